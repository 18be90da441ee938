"""Search reports: the numbers behind them (Pareto set, fit, PCA, block grid, Eq. 1) and the figures and page
drawn from small stored runs, checked for what they show.

The two stored runs are written through the library's record functions with chosen accuracies and
latencies (no training), on the two-block ``lut-test`` space (one-hot width 18).
"""

import itertools
import re

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from akd_tf.cli import main
from akd_tf.space import get_space
from latency_db.store import open_store
from search import analysis, figures, runs
from search.config import SearchConfig
from search.report import load_run, write_report
from run_fixtures import RUN_A, RUN_B, store_run

# ------------------------------------------------------------------------------------------- analysis


def brute_force_front(accuracy, latency):
    n = len(accuracy)
    return [not any(latency[q] <= latency[p] and accuracy[q] >= accuracy[p]
                    and (latency[q] < latency[p] or accuracy[q] > accuracy[p]) for q in range(n))
            for p in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=30))
def test_pareto_front_equals_the_brute_force_definition_ties_included(points):
    accuracy = [a / 6 for a, _ in points]
    latency = [0.1 * l for _, l in points]
    assert analysis.pareto_front(accuracy, latency).tolist() == brute_force_front(accuracy, latency)


def test_pareto_front_of_a_known_set():
    # (latency, accuracy): the third is beaten by the first; the last two are identical, so both stay
    latency = [1.0, 2.0, 1.5, 3.0, 3.0]
    accuracy = [0.5, 0.7, 0.4, 0.9, 0.9]
    assert analysis.pareto_front(accuracy, latency).tolist() == [True, True, False, True, True]
    with pytest.raises(ValueError, match="one length"):
        analysis.pareto_front([0.1, 0.2], [1.0])


def test_linear_fit_recovers_a_line_and_reports_r2():
    fit = analysis.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert (fit.slope, fit.intercept, fit.r2, fit.n) == (pytest.approx(2.0), pytest.approx(1.0), pytest.approx(1.0), 4)
    assert fit.equation("MMACs", "latency (ms)") == "MMACs = 2 × latency (ms) + 1  (R² = 1.000, n = 4)"
    assert analysis.linear_fit([0, 1], [1, 0]).equation("y", "x") == "y = -1 × x + 1  (R² = 1.000, n = 2)"
    noisy = analysis.linear_fit([0, 1, 2], [0, 2, 1])
    assert noisy.r2 == pytest.approx(0.25)  # slope 0.5: residuals 0.5, 1, 0.5 -> SSE 1.5 of SST 2
    with pytest.raises(ValueError, match="two points with different x"):
        analysis.linear_fit([1, 1], [2, 3])


def test_pca_finds_the_direction_of_the_spread_and_keeps_the_width():
    rows = np.array([[0, 0, 1], [1, 1, 1], [2, 2, 1], [3, 3, 1]], dtype=float)
    result = analysis.pca(rows, k=2)
    assert result.coords.shape == (4, 2)
    assert result.components.shape == (2, 3)
    np.testing.assert_allclose(result.components[0], [2 ** -0.5, 2 ** -0.5, 0], atol=1e-12)
    np.testing.assert_allclose(result.explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.coords[:, 0], np.array([-1.5, -0.5, 0.5, 1.5]) * 2 ** 0.5)
    with pytest.raises(ValueError, match="at least two rows"):
        analysis.pca(rows[:1])


@pytest.mark.parametrize("space_name", ["mnasnet", "lut-test"])
def test_block_grid_lays_every_onehot_position_out_once(space_name, tiny_space):
    space = get_space(space_name)
    vector = np.arange(space.onehot_width, dtype=float)
    grid = analysis.block_grid(space, vector)
    cells = grid.values[~np.isnan(grid.values)]
    assert len(cells) == space.onehot_width
    assert cells.tolist() == vector.tolist()  # row-major order is the one-hot order
    assert grid.values.shape[0] == space.num_blocks
    assert [g[0] for g in grid.groups] == ["conv_op", "kernel", "se_ratio", "skip_op", "width", "layers"]
    arch = space.sample_many(1, seed=3)[0]
    onehot_grid = analysis.block_grid(space, arch.onehot())
    chosen = [[grid.labels[r][c] for c in range(grid.values.shape[1]) if onehot_grid.values[r, c] == 1]
              for r in range(space.num_blocks)]
    assert ":".join("_".join(block) for block in chosen) == arch.to_string()


def test_relative_gain_of_the_papers_15ms_row():
    # Table 5, 15 ms: AKD 66.5 (KD) / 61.4 (labels); NAS 63.9 (KD) / 59.73 (labels)
    table = {"akd": {"kd": 66.5, "label": 61.4}, "nas": {"kd": 63.9, "label": 59.73}}
    assert analysis.relative_gain(table) == pytest.approx((66.5 - 61.4) - (63.9 - 59.73))
    assert analysis.relative_gain(table) == pytest.approx(0.93)
    with pytest.raises(ValueError, match="nas trained with label"):
        analysis.relative_gain({"akd": {"kd": 1.0, "label": 0.5}, "nas": {"kd": 0.7}})


def test_spread_is_the_mean_and_sample_deviation():
    one = analysis.spread([0.02])
    assert (one.mean, one.std, one.n) == (0.02, None, 1)
    assert one.describe(100, " pt") == "+2.00 pt (1 seed)"
    three = analysis.spread([0.01, 0.02, 0.03])
    assert (three.mean, three.std) == (pytest.approx(0.02), pytest.approx(0.01))
    assert three.describe(100, " pt") == "+2.00 pt ± 1.00 pt (n = 3 seeds)"


def test_top_by_accuracy_keeps_finished_children_in_the_range():
    trials = [{"number": i, "status": s, "accuracy": a, "latency_ms": l}
              for i, (s, a, l) in enumerate([("done", 0.5, 1.0), ("done", 0.9, 3.0), ("failed", None, 1.0),
                                             ("done", 0.7, 2.0), ("done", 0.7, 1.5)])]
    assert [t["number"] for t in analysis.top_by_accuracy(trials, 3)] == [1, 3, 4]
    assert [t["number"] for t in analysis.top_by_accuracy(trials, 5, (1.0, 2.0))] == [3, 4, 0]


# ------------------------------------------------------------------------------- stored runs, figures

@pytest.fixture
def two_runs(tmp_path, tiny_space):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    store_run(store, "akd-run", RUN_A, "kd")
    store_run(store, "nas-run", RUN_B, "label")
    return store, url


def gid(fig, name):
    found = [a for ax in fig.axes for a in itertools.chain(ax.collections, ax.lines, ax.images)
             if a.get_gid() == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_pareto_figure_plots_every_finished_child_and_the_brute_force_front(two_runs):
    store, _ = two_runs
    data = [load_run(store, "akd-run"), load_run(store, "nas-run")]
    fig = figures.pareto(data)
    for run, children in zip(data, (RUN_A, RUN_B)):
        done = [(a, l) for _, a, l in children if a is not None]
        points = gid(fig, f"children:{run.name}").get_offsets()
        assert sorted(map(tuple, points)) == sorted((l, 100 * a) for a, l in done)
        front = brute_force_front([a for a, _ in done], [l for _, l in done])
        expected = sorted((l, 100 * a) for (a, l), on in zip(done, front) if on)
        line = gid(fig, f"pareto:{run.name}")
        np.testing.assert_allclose(np.column_stack([line.get_xdata(), line.get_ydata()]), expected)
    assert gid(fig, "target").get_xdata()[0] == 0.5
    assert fig.axes[0].get_title() == "Accuracy against latency (1 failed, not shown)"
    assert fig.axes[0].get_xlabel() == "latency (ms)"


def test_trajectory_figure_has_three_panels_with_a_point_per_finished_child(two_runs):
    store, _ = two_runs
    run = load_run(store, "akd-run")
    fig = figures.trajectory([run])
    assert [ax.get_ylabel() for ax in fig.axes] == ["reward", "proxy top-1 accuracy (%)", "latency (ms)"]
    panels = [[c for c in ax.collections if c.get_gid() == "children:akd-run"][0].get_offsets() for ax in fig.axes]
    assert [p[:, 0].tolist() for p in panels] == [[0, 1, 3, 4, 5]] * 3
    assert panels[1][:, 1].tolist() == pytest.approx([50, 75, 70, 40, 72])
    best = gid(fig, "best:akd-run").get_ydata()
    assert list(best) == pytest.approx(np.maximum.accumulate(panels[0][:, 1]).tolist())


def test_macs_figure_fits_the_plotted_points(two_runs):
    store, _ = two_runs
    run = load_run(store, "akd-run")
    fig = figures.macs_latency([run])
    points = gid(fig, "children:akd-run").get_offsets()
    assert len(points) == len(RUN_A)  # the failed child has a latency and MACs too
    fit = analysis.linear_fit(points[:, 0], points[:, 1])
    line = gid(fig, "fit:akd-run")
    assert list(line.get_ydata()) == pytest.approx([fit.slope * x + fit.intercept for x in line.get_xdata()])
    assert line.get_label() == fit.equation("MMACs", "latency (ms)")


def test_pca_figure_projects_every_proposed_child_of_both_runs(two_runs, tiny_space):
    store, _ = two_runs
    data = [load_run(store, "akd-run"), load_run(store, "nas-run")]
    fig, result = figures.architecture_pca(data)
    assert result.components.shape == (2, tiny_space.onehot_width)
    assert len(gid(fig, "pca:akd-run").get_offsets()) == len(RUN_A)
    assert len(gid(fig, "pca:nas-run").get_offsets()) == len(RUN_B)
    expected = analysis.pca(analysis.onehot_matrix(tiny_space, [a for a, _, _ in RUN_A + RUN_B]))
    np.testing.assert_allclose(gid(fig, "pca:nas-run").get_offsets(), expected.coords[len(RUN_A):])


def test_difference_heatmap_is_the_mean_onehot_of_the_top_k_a_minus_b(two_runs, tiny_space):
    store, _ = two_runs
    data = [load_run(store, "akd-run"), load_run(store, "nas-run")]
    tops = [analysis.top_by_accuracy(run.trials, 2, (0.2, 0.9)) for run in data]
    assert [[t["number"] for t in top] for top in tops] == [[5, 3], [3, 1]]
    difference = (analysis.onehot_matrix(tiny_space, [t["arch"] for t in tops[0]]).mean(axis=0)
                  - analysis.onehot_matrix(tiny_space, [t["arch"] for t in tops[1]]).mean(axis=0))
    grid = analysis.block_grid(tiny_space, difference)
    fig = figures.option_heatmap(grid, "A minus B", difference=True)
    shown = gid(fig, "heatmap").get_array()
    assert shown.shape == (2, 9) and tiny_space.onehot_width == 18  # 2 blocks x (2+1+1+2+1+2) options
    assert np.count_nonzero(~np.isnan(np.asarray(shown, dtype=float))) == tiny_space.onehot_width
    # block 1 conv op: A's two picks are both mbconv3, B's are one mbconv3 and one dwconv
    assert grid.labels[0][:2] == ["dwconv", "mbconv3"]
    assert grid.values[0, :2].tolist() == [-0.5, 0.5]


def test_the_report_page_shows_every_figure_it_wrote_and_each_runs_top_children(two_runs, tmp_path):
    store, _ = two_runs
    out = tmp_path / "report"
    report = write_report(store, "akd-run", out, compare="nas-run", top_k=3)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["heatmap.png", "macs_latency.png", "pareto.png", "pca.png", "trajectory.png"]
    assert sorted(report.figures) == pngs and report.skipped == {}
    page = (out / "index.html").read_text()
    assert sorted(re.findall(r'<img src="([^"]+)"', page)) == pngs
    assert all((out / name).stat().st_size > 10_000 for name in pngs)  # real pictures, not empty canvases
    tables = page.split("<h2>Top 3 children of ")[1:]
    assert [t.split("<", 1)[0] for t in tables] == ["akd-run by reward", "nas-run by reward"]
    assert re.findall(r'<tr><td class="num">(\d+)</td>', tables[0]) == ["1", "5", "3"]
    assert "<code>mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n2</code>" in tables[0]
    assert "<th>children</th><td>5 done, 1 failed, 0 pending of 6</td><td>4 done, 0 failed, 0 pending of 4</td>" \
        in page


def test_a_single_child_gets_the_figures_it_can_and_the_page_says_why_not_the_others(tmp_path, tiny_space):
    store = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    store_run(store, "one", RUN_A[:1], "label")
    report = write_report(store, "one", tmp_path / "out", latency_range=(2.0, 3.0))
    assert sorted(report.figures) == ["pareto.png", "trajectory.png"]
    assert report.skipped == {"macs_latency.png": "fewer than two children have a latency",
                              "pca.png": "PCA needs at least two children",
                              "heatmap.png": "no finished child of 'one' has latency 2-3 ms"}
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<li><code>pca.png</code>: PCA needs at least two children</li>" in page


def test_cli_report_writes_the_files_and_names_bad_input(two_runs, tmp_path):
    _, url = two_runs
    out = tmp_path / "cli-report"
    result = CliRunner().invoke(main, ["search", "report", "akd-run", "--compare", "nas-run", "--out", str(out),
                                       "--db", url])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {out / name}" for name in (
        "trajectory.png", "pareto.png", "macs_latency.png", "pca.png", "heatmap.png", "index.html")] + [
        f"open {out / 'index.html'}"]
    missing = CliRunner().invoke(main, ["search", "report", "nope", "--out", str(out), "--db", url])
    assert missing.exit_code == 1
    assert "no search run named 'nope'; known runs: akd-run, nas-run" in missing.output
    reversed_range = CliRunner().invoke(main, ["search", "report", "akd-run", "--out", str(out), "--db", url,
                                               "--latency-range", "2", "1"])
    assert "latency range must be LOW <= HIGH, got 2.0 > 1.0" in reversed_range.output
    itself = CliRunner().invoke(main, ["search", "report", "akd-run", "--compare", "akd-run", "--out", str(out),
                                       "--db", url])
    assert itself.exit_code == 1 and "--compare must name another run than 'akd-run'" in itself.output


def test_a_compared_run_without_children_skips_what_needs_them_and_says_so(two_runs, tmp_path):
    store, _ = two_runs
    config = SearchConfig(name="empty", space="lut-test", controller="random", reward_source="label",
                          target_ms=0.5, trials=4, data={"source": "demo", "val_size": 50})
    runs.create_or_resume(store, config, {"input_shape": [32, 32, 1], "classes": 10, "dataset": "demo"})
    stale = tmp_path / "out" / "pca.png"
    stale.parent.mkdir()
    stale.write_bytes(b"an earlier report's figure")
    report = write_report(store, "akd-run", tmp_path / "out", compare="empty")
    assert sorted(report.figures) == ["macs_latency.png", "pareto.png", "trajectory.png"]
    assert report.skipped == {"pca.png": "'empty' has no children yet",
                              "heatmap.png": "'empty' has no finished child yet"}
    assert not stale.exists()
    alone = write_report(store, "empty", tmp_path / "alone")
    assert alone.figures == {} and alone.skipped == {
        "trajectory.png": "no child has finished yet", "pareto.png": "no child has finished yet",
        "macs_latency.png": "fewer than two children have a latency", "pca.png": "'empty' has no children yet",
        "heatmap.png": "'empty' has no finished child yet"}
    assert (tmp_path / "alone" / "index.html").exists()


def test_a_macs_target_is_drawn_on_the_macs_figure(tmp_path, tiny_space):
    store = open_store(f"sqlite:///{tmp_path / 'flops.db'}")
    store_run(store, "flops-run", RUN_A, "label", reward="flops", target_mmacs=0.2)
    fig = figures.macs_latency([load_run(store, "flops-run")])
    line = gid(fig, "target")
    assert list(line.get_ydata()) == [0.2, 0.2] and line.get_label() == "target 0.2 M MACs"
