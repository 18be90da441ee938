"""``akd-tf search report``: PNG figures of one run (or two compared) and an ``index.html`` showing them.

:func:`write_report` reads the runs from the store and writes into ``out_dir``:

* ``trajectory.png`` — reward, accuracy and latency against trial number;
* ``pareto.png`` — accuracy against latency, Pareto fronts, the target;
* ``macs_latency.png`` — MACs against latency with the least-squares line;
* ``pca.png`` — PCA of the one-hot architectures, shaded by generation;
* ``heatmap.png`` — with ``compare``: mean one-hot vector of run A's top-K children (by accuracy,
  within ``latency_range``) minus run B's; alone: run A's option frequencies among its top-K;
* ``kept.png`` — a subgraph run (instead of ``pca.png`` and ``heatmap.png``, which need a search space):
  the teacher's channel groups and residual branches, and what its best student kept of each;
* ``index.html`` — a summary table per run, every figure with a caption, and each run's top children.

A figure that cannot be drawn (say, PCA of a single child) is left out and the page says why.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from akd_tf.errors import InvalidInput
from latency_db.store import Store
from search import analysis, display, runs
from search.checks import check_int

FIGURE_DPI = 120
FIGURE_FILES = ("trajectory.png", "pareto.png", "macs_latency.png", "pca.png", "heatmap.png", "kept.png")
NOT_A_SPACE = "a subgraph run's students are carved out of its teacher, not architectures of a search space"


@dataclass
class Report:
    """What :func:`write_report` wrote: ``figures`` (file name -> caption), ``skipped`` (name -> reason)."""

    out_dir: Path
    index: Path
    figures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def load_run(store: Store, name: str):
    """A stored run as :class:`search.figures.RunData`."""
    from search.figures import RunData

    run = runs.get_run(store, name)
    return RunData(runs.run_status(store, name), [runs.trial_dict(t) for t in runs.all_trials(store, run.id)])


def write_report(store: Store, name: str, out_dir, *, compare: str | None = None, top_k: int = 10,
                 heatmap_k: int = 20, latency_range: tuple[float, float] | None = None,
                 say: Callable[[str], None] = lambda _m: None) -> Report:
    """Write the figures and ``index.html`` for run ``name`` (overlaid with run ``compare``) into ``out_dir``."""
    import matplotlib.pyplot as plt

    from search import figures

    check_int("top_k", top_k, 1)
    check_int("heatmap_k", heatmap_k, 1)
    if compare is not None and compare == name:
        raise InvalidInput(f"--compare must name another run than {name!r}")
    if latency_range is not None:
        analysis.check_range(latency_range)
    data = [load_run(store, name)] + ([load_run(store, compare)] if compare is not None else [])
    figures.check_runs(data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in FIGURE_FILES:  # a figure skipped this time must not survive from an earlier report
        (out_dir / stale).unlink(missing_ok=True)
    report = Report(out_dir, out_dir / "index.html")

    def save(file_name: str, fig, caption: str) -> None:
        fig.savefig(out_dir / file_name, dpi=FIGURE_DPI)
        plt.close(fig)
        report.figures[file_name] = caption
        say(f"wrote {out_dir / file_name}")

    if not any(run.done for run in data):
        report.skipped["trajectory.png"] = report.skipped["pareto.png"] = "no child has finished yet"
    else:
        save("trajectory.png", figures.trajectory(data),
             "Reward (with the best so far), proxy accuracy and latency of each finished child against its "
             "trial number; the dashed line is the latency target.")
        save("pareto.png", figures.pareto(data),
             "Accuracy against latency; the children no other child beats on both are joined as the Pareto "
             "front; the dashed line is the latency target.")
    if any(sum(t["latency_ms"] is not None for t in run.trials) >= 2 for run in data):
        save("macs_latency.png", figures.macs_latency(data),
             "Multiply-accumulates against latency for every child with a latency, with the least-squares "
             "line of each run; its equation is in the legend.")
    else:
        report.skipped["macs_latency.png"] = "fewer than two children have a latency"
    carved = [run for run in data if run.summary.get("strategy") == "subgraph"]
    if carved:
        report.skipped["pca.png"] = report.skipped["heatmap.png"] = NOT_A_SPACE
        _kept(store, carved[0], report, save)
    elif sum(len(run.trials) for run in data) >= 2 and all(run.trials for run in data):
        fig, result = figures.architecture_pca(data)
        save("pca.png", fig,
             f"Every proposed child's one-hot architecture vector projected on the first two principal "
             f"components of all of them ({result.explained[0]:.1%} and {result.explained[1]:.1%} of the "
             f"variance), shaded by generation (controller step): light early, dark late.")
    else:
        empty = [repr(run.name) for run in data if not run.trials]
        report.skipped["pca.png"] = (f"{', '.join(empty)} has no children yet" if empty else
                                     "PCA needs at least two children")
    if not carved:
        _heatmap(data, heatmap_k, latency_range, report, save)
    report.index.write_text(_page(data, report, top_k, store))
    say(f"wrote {report.index}")
    return report


def _kept(store: Store, run, report: Report, save) -> None:
    """The teacher's units with what the run's best student kept (the subgraph strategy)."""
    from search import figures

    if not run.done:
        report.skipped["kept.png"] = f"{run.name!r} has no finished student yet"
        return
    best = max(run.done, key=lambda t: t["reward"])
    trial = runs.get_trial(store, run.name, best["number"])
    save("kept.png", figures.kept_units(trial.train["widths"], trial.train["branches"],
                                        f"What trial #{trial.number} of {run.name!r} kept of the teacher"),
         f"The teacher's channel groups (one bar each, input at the top) and what the best student (trial "
         f"#{trial.number}, reward {trial.reward:.4f}) kept of each: light the teacher's width, dark the student's; "
         "a cross marks a group inside a residual branch the student removed.")


def _range_text(latency_range) -> str:
    return "any latency" if latency_range is None else f"latency {latency_range[0]:g}-{latency_range[1]:g} ms"


def _heatmap(data, k: int, latency_range, report: Report, save) -> None:
    from akd_tf.space import get_space
    from search import figures

    space = get_space(data[0].summary["space"])
    chosen = [analysis.top_by_accuracy(run.trials, k, latency_range) for run in data]
    empty = [run.name for run, top in zip(data, chosen) if not top]
    if empty:
        names = ", ".join(repr(n) for n in empty)
        report.skipped["heatmap.png"] = (f"{names} has no finished child yet" if latency_range is None else
                                         f"no finished child of {names} has {_range_text(latency_range)}")
        return
    means = [analysis.onehot_matrix(space, [t["arch"] for t in top]).mean(axis=0) for top in chosen]
    counts = " and ".join(f"{len(top)} of {run.name!r}" for run, top in zip(data, chosen))
    if len(data) == 2:
        grid = analysis.block_grid(space, means[0] - means[1])
        title = (f"Most accurate children ({counts}; {_range_text(latency_range)}): mean one-hot of "
                 f"A = {data[0].name} minus B = {data[1].name}")
        caption = (f"Mean one-hot vector of the most accurate children ({counts}, {_range_text(latency_range)}) "
                   f"of A = {data[0].name!r} minus that of B = {data[1].name!r}: red options are chosen more "
                   f"often by A, blue by B; rows are blocks, columns each decision's options.")
    else:
        grid = analysis.block_grid(space, means[0])
        title = f"Options of the most accurate children ({counts}; {_range_text(latency_range)})"
        caption = (f"Fraction of the most accurate children ({counts}, {_range_text(latency_range)}) choosing "
                   f"each option; rows are blocks, columns each decision's options. Give --compare for the "
                   f"difference between two runs.")
    save("heatmap.png", figures.option_heatmap(grid, title, difference=len(data) == 2), caption)


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _summary_rows(run) -> dict[str, str]:
    s = run.summary
    best = s["best"]
    targets = []
    if s["target_ms"] is not None:
        targets.append(f"{s['target_ms']:g} ms")
    if s["target_mmacs"] is not None:
        targets.append(f"{s['target_mmacs']:g} M MACs")
    target = ", ".join(targets) or "none"
    return {
        "status": s["status"], "space": s["space"], "device": s["device"], "controller": s["controller"],
        "reward": s["reward"], "accuracy from": s["reward_source"], "target": target, "seed": str(s["seed"]),
        "children": display.children_counts(s),
        "excluded children (not learnt from)": display.excluded_reasons(s),
        "child training time": f"{s['train_seconds'] / 60:.1f} min",
        "dataset": str(s["facts"].get("dataset")),
        "best child": "none yet" if best is None else (
            f"#{best['number']}: reward {best['reward']:.4f}, top-1 {best['accuracy']:.2%}, "
            f"{best['latency_ms']:.3f} ms ({best['latency_source']})"),
    }


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
"""


def _page(data, report: Report, top_k: int, store: Store) -> str:
    title = "Search report: " + " vs ".join(run.name for run in data)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append("<h2>Runs</h2><table><tr><th></th>" +
                 "".join(f"<th>{html.escape(run.name)}</th>" for run in data) + "</tr>")
    rows = [_summary_rows(run) for run in data]
    for label in rows[0]:
        cells = "".join(f"<td>{html.escape(r[label])}</td>" for r in rows)
        parts.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for file_name, caption in report.figures.items():
        parts.append(f"<figure><img src=\"{html.escape(file_name)}\" alt=\"{html.escape(file_name)}\">"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if report.skipped:
        parts.append("<p>Not drawn:</p><ul>" + "".join(
            f"<li><code>{html.escape(n)}</code>: {html.escape(reason)}</li>" for n, reason in report.skipped.items())
            + "</ul>")
    for run in data:
        parts.append(f"<h2>Top {top_k} children of {html.escape(run.name)} by reward</h2>")
        parts.append(_top_table(runs.top_trials(store, run.name, top_k)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _top_table(top: list[dict]) -> str:
    if not top:
        return "<p>No finished child yet.</p>"
    head = ("<table><tr><th>#</th><th>architecture</th><th>reward</th><th>top-1</th><th>latency (ms)</th>"
            "<th>source</th><th>M MACs</th><th>params</th></tr>")
    rows = [f"<tr><td class=\"num\">{t['number']}</td><td><code>{html.escape(t['arch'])}</code></td>"
            f"<td class=\"num\">{t['reward']:.4f}</td><td class=\"num\">{t['accuracy']:.2%}</td>"
            f"<td class=\"num\">{_fmt(t['latency_ms'], '.3f')}</td><td>{html.escape(t['latency_source'] or '-')}</td>"
            f"<td class=\"num\">{_fmt(t['mmacs'], '.2f')}</td><td class=\"num\">{_fmt(t['params'], ',')}</td></tr>"
            for t in top]
    return head + "".join(rows) + "</table>"
