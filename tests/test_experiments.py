"""`akd-tf experiment relative-gain` and `experiment teachers` end to end, small: the two-block ``lut-test`` space,
two children per search trained one epoch on 64 demo images, picks trained one epoch, latencies predicted
by a table measured on this host. Plus the pick rule and the printed table on fixed numbers.
"""

import json

import pytest
import tf_keras as keras
from click.testing import CliRunner

from akd_tf.cli import main
from latency_db.store import open_store
from run_fixtures import RUN_A, build_tiny_lut, store_run
from search import analysis, runs
from search.config import ProxySettings, SearchConfig
from search.experiments import RelativeGainPlan, pick_near_target, relative_gain_lines

SEARCH_OPTIONS = ["--space", "lut-test", "--controller", "random", "--target-ms", "0.05", "--trials", "2",
                  "--batch-size", "2", "--proxy-epochs", "1", "--proxy-train-size", "64", "--proxy-batch-size", "32",
                  "--val-size", "50"]


def tiny_teacher(path, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(path)
    return str(path)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_pick_is_the_best_reward_within_the_tolerance_and_a_miss_names_the_nearest(tmp_path, tiny_space):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    store_run(store, "a", RUN_A, "label")  # target 0.5 ms; latencies 0.25 1.0 (0.30 failed) 0.60 0.70 0.80
    assert pick_near_target(store, "a", 0.25)["number"] == 3  # 0.375-0.625 ms: only #3 (0.60 ms)
    assert pick_near_target(store, "a", 1.0)["number"] == 1  # 0-1 ms: #1 has the highest reward
    with pytest.raises(ValueError, match=r"no finished child of 'a' lies within ±10% of the target 0.5 ms "
                                         r"\(0.45-0.55 ms\); the nearest is #3 at 0.6 ms: widen --tolerance"):
        pick_near_target(store, "a", 0.1)
    store_run(store, "failed", RUN_A[2:3], "label")
    with pytest.raises(ValueError, match="^run 'failed' has no finished child$"):
        pick_near_target(store, "failed", 0.1)


def test_the_plan_refuses_what_cannot_give_a_table():
    base = SearchConfig(name="x", space="lut-test", target_ms=0.5, teachers=("t.keras",))
    with pytest.raises(ValueError, match="needs a teacher"):
        RelativeGainPlan("x").validate(SearchConfig(name="x", reward_source="label", target_ms=0.5))
    with pytest.raises(ValueError, match="reward 'accuracy' has no cost target"):
        RelativeGainPlan("x").validate(SearchConfig(name="x", reward="accuracy", teachers=("t.keras",)))
    with pytest.raises(ValueError, match=r"seeds must differ, got \[1, 1\]"):
        RelativeGainPlan("x", seeds=(1, 1)).validate(base)
    with pytest.raises(ValueError, match="search name must be"):
        RelativeGainPlan("bad name").validate(base)


def fixed_result():
    students = {"test_top1": 0.9, "test_examples": 360}
    per_seed = []
    for seed, (akd_kd, akd_label, nas_kd, nas_label) in ((0, (0.90, 0.85, 0.88, 0.86)), (1, (0.91, 0.87, 0.89, 0.86))):
        table = {"akd": {"kd": akd_kd, "label": akd_label}, "nas": {"kd": nas_kd, "label": nas_label}}
        per_seed.append({"seed": seed, "table": table, "relative_gain": analysis.relative_gain(table),
                         "picks": {arm: {"number": n, "latency_ms": 0.5, "mmacs": 1.25, "arch": arch}
                                   for arm, n, arch in (("akd", 3, "A"), ("nas", 4, "A" if seed else "B"))},
                         "students": students, "accuracy": "test top-1 of the .tflite (360 images)"})
    from search.experiments import _result

    base = SearchConfig(name="p", target_ms=0.5, trials=20, teachers=("t.keras",))
    return _result(base, RelativeGainPlan("p", seeds=(0, 1), epochs=5, tolerance=0.2), per_seed)


def test_the_printed_table_is_the_mean_and_spread_of_the_seeds_and_eq1():
    result = fixed_result()
    # seed 0: (0.90-0.85)-(0.88-0.86) = 0.03; seed 1: (0.91-0.87)-(0.89-0.86) = 0.01
    assert result["relative_gain"]["mean"] == pytest.approx(0.02)
    assert result["relative_gain"]["std"] == pytest.approx(0.02 ** 0.5 / 10)  # sample std of 0.03 and 0.01
    assert relative_gain_lines(result) == [
        "Relative gain of AKD over NAS: 20 children per search, target 0.5 ms on 'local', picks within ±20%, "
        "trained 5 epochs; seeds 0, 1",
        "accuracy: test top-1 of the .tflite (360 images)",
        "",
        "| searched by | trained with labels | trained with KD | KD - labels |",
        "|---|---:|---:|---:|",
        "| AKD (searched with KD) | 86.00 ± 1.41% | 90.50 ± 0.71% | +4.50 pt ± 0.71 pt (n = 2 seeds) |",
        "| NAS (searched with labels) | 86.00 ± 0.00% | 88.50 ± 0.71% | +2.50 pt ± 0.71 pt (n = 2 seeds) |",
        "",
        "relative gain [KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)] = +2.00 pt ± 1.41 pt (n = 2 seeds)",
        "per seed: seed 0 +3.00 pt, seed 1 +1.00 pt",
        "seed 0 akd pick: #3 0.500 ms 1.25 M MACs `A`",
        "seed 0 nas pick: #4 0.500 ms 1.25 M MACs `B`",
        "seed 1 akd pick: #3 0.500 ms 1.25 M MACs `A`",
        "seed 1 nas pick: #4 0.500 ms 1.25 M MACs `A`",
        "note: with seed 1 both searches picked the same architecture, so the relative gain there only measures "
        "training noise; give the searches more --trials",
    ]


def test_a_macs_target_is_what_the_table_names():
    result = fixed_result()
    result["search"].update(reward="flops", target_mmacs=5.0)
    assert relative_gain_lines(result)[0].startswith("Relative gain of AKD over NAS: 20 children per search, "
                                                     "target 5 M MACs on 'local'")


def test_relative_gain_runs_both_searches_trains_the_picks_and_resumes_without_retraining(tmp_path, tiny_space):
    # One child per search: with one seed both searches propose the same child, so the picks coincide (the
    # branch a small demo meets; which branch a 2-child run takes depends on the host's latency table)
    url = build_tiny_lut(f"sqlite:///{tmp_path / 'exp.db'}")
    teacher = tiny_teacher(tmp_path / "teacher.keras", seed=0)
    out = tmp_path / "rg"
    options = [o if o != "2" else "1" for o in SEARCH_OPTIONS]  # --trials 1 --batch-size 1
    args = ["experiment", "relative-gain", "--name", "rg", "--teacher", teacher, "--epochs", "1", "--tolerance", "100",
            "--out", out, "--cache-dir", tmp_path / "cache", "--db", url, *options]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    store = open_store(url)
    akd, nas = runs.run_status(store, "rg-s0-akd"), runs.run_status(store, "rg-s0-nas")
    assert (akd["reward_source"], nas["reward_source"], akd["seed"], nas["seed"]) == ("kd", "label", 0, 0)
    assert akd["trials"]["done"] == nas["trials"]["done"] == 1
    # same seed, same controller: both searches proposed the same child
    assert [t["arch"] for t in runs_trials(store, "rg-s0-akd")] == [t["arch"] for t in runs_trials(store, "rg-s0-nas")]
    result = json.loads((out / "relative_gain.json").read_text())
    seed = result["per_seed"][0]
    assert seed["picks"]["akd"]["arch"] == seed["picks"]["nas"]["arch"]
    for training in ("kd", "label"):
        stem = out / "seed0" / f"akd-t0-{training}"
        record = json.loads(stem.with_suffix(".json").read_text())
        assert (record["run"], record["trial"], record["trained_with"], record["epochs"]) == (
            "rg-s0-akd", 0, training, 1)
        assert seed["table"]["akd"][training] == seed["table"]["nas"][training] == record["test_top1"]
        assert stem.with_suffix(".tflite").stat().st_size == record["size_bytes"]
    assert sorted(p.name for p in (out / "seed0").glob("*.json")) == ["akd-t0-kd.json", "akd-t0-label.json"]
    assert "both searches picked the same architecture; its students trained above serve for both rows" in first.output
    assert seed["relative_gain"] == 0.0
    assert (out / "relative_gain.md").read_text().splitlines() == relative_gain_lines(result)
    assert relative_gain_lines(result)[-1].startswith("note: with seed 0 both searches picked the same architecture")
    assert first.output.splitlines()[-1] == (f"wrote {out}/relative_gain.json, {out}/relative_gain.md and "
                                             f"{out}/report/index.html")
    assert (out / "report" / "pca.png").exists()

    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert again.output.count("already trained") == 2
    assert "training trial" not in again.output
    assert json.loads((out / "relative_gain.json").read_text())["per_seed"][0]["table"] == seed["table"]


def runs_trials(store, name):
    return [runs.trial_dict(t) for t in runs.all_trials(store, runs.get_run(store, name).id)]


def test_teachers_runs_one_search_per_teacher_and_writes_their_comparison(tmp_path, tiny_space, monkeypatch):
    url = build_tiny_lut(f"sqlite:///{tmp_path / 'exp.db'}")
    teachers = [tiny_teacher(tmp_path / f"teacher{i}.keras", seed=i) for i in (1, 2)]
    out = tmp_path / "teachers"
    monkeypatch.chdir(tmp_path)  # teachers given relative to here are stored absolute (Ray nodes, other dirs)
    result = invoke("experiment", "teachers", "--name", "tt", "--teacher", "teacher1.keras", "--teacher",
                    "./teacher2.keras", "--out", out, "--cache-dir", tmp_path / "cache", "--db", url, *SEARCH_OPTIONS)
    assert result.exit_code == 0, result.output
    store = open_store(url)
    first, second = runs.get_run(store, "tt-t1"), runs.get_run(store, "tt-t2")
    assert (list(first.config["settings"]["teachers"]), list(second.config["settings"]["teachers"])) == \
        ([teachers[0]], [teachers[1]])
    assert first.config["facts"]["teacher_fingerprint"] != second.config["facts"]["teacher_fingerprint"]
    assert sorted(p.name for p in out.glob("*.png")) == ["heatmap.png", "macs_latency.png", "pareto.png", "pca.png",
                                                         "trajectory.png"]
    assert result.output.splitlines()[-1] == f"open {out / 'index.html'}"
    one = invoke("experiment", "teachers", "--name", "tt", "--teacher", teachers[0], "--out", out, "--db", url)
    assert one.exit_code == 2 and "give --teacher exactly twice, got 1" in one.output


def test_relative_gain_with_proxy_settings_left_at_defaults_keeps_them(tmp_path):
    # the base config the CLI builds carries every search option, so a rerun compares equal and resumes
    base = SearchConfig(name="p", target_ms=0.5, teachers=("t.keras",), proxy=ProxySettings(epochs=2))
    plan = RelativeGainPlan("p", seeds=(3,))
    plan.validate(base)
    from search.experiments import arm_config

    akd, nas = arm_config(base, "p", 3, "akd"), arm_config(base, "p", 3, "nas")
    assert akd.differences(nas) == ["name: 'p-s3-akd' -> 'p-s3-nas'", "reward_source: 'kd' -> 'label'"]
    assert (akd.seed, akd.proxy.epochs, nas.teachers) == (3, 2, ("t.keras",))
