"""`akd-tf search list/status/top`, the live display's lines, `export --run`, and the CLI's bad-input errors.

The stored run here is written through the library's own record functions with chosen numbers, so the
printed tables can be compared exactly; `export --run` then really trains, exports and measures trial 0.
"""

import json
import os

import pytest
from click.testing import CliRunner

from akd_tf.cli import main
from latency_db.store import open_store
from search import display, runs
from search.display import TrialEvent
from search.config import ProxySettings, SearchConfig
from search.failures import Failure
from search.rewards import compute_reward

SMALL = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"
LARGE = "mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n2"


@pytest.fixture
def stored_run(tmp_path, tiny_space):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    config = SearchConfig(name="demo-run", space="lut-test", controller="random", reward_source="label",
                          target_ms=0.5, trials=4, batch_size=3, data={"source": "demo", "val_size": 50},
                          proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
    run, _ = runs.create_or_resume(store, config, {"input_shape": [32, 32, 1], "classes": 10})
    archs = [tiny_space.parse(SMALL), tiny_space.parse(LARGE), tiny_space.parse(SMALL)]
    runs.add_trials(store, run.id, 0, [runs.NewTrial(a.tokens) for a in archs])
    trials = runs.step_trials(store, run.id, 0)
    for trial, (accuracy, latency) in zip(trials[:2], [(0.5, 0.25), (0.75, 1.0)]):
        runs.record_latency(store, trial.id, latency_ms=latency, source="predicted", measurement_id=None, seconds=0.0)
        runs.record_result(store, trial.id, accuracy=accuracy, train={}, train_seconds=2.0, worker="w:1",
                           reward_terms=compute_reward("mnas-soft", accuracy, latency_ms=latency, target_ms=0.5))
    runs.record_failure(store, trials[2].id, Failure("diverged", "TrainingDiverged: loss became nan at step 1"),
                        max_attempts=config.max_attempts)
    store.close()
    return url


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_search_list_status_and_top_print_the_stored_run(stored_run):
    listed = invoke("search", "list", "--db", stored_run)
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "name      status   controller  reward     source  device  trials  best reward",
        "--------  -------  ----------  ---------  ------  ------  ------  -----------",
        "demo-run  running  random      mnas-soft  label   local      3/4       0.7145",
    ]
    status = invoke("search", "status", "demo-run", "--db", stored_run)
    assert status.output.splitlines() == [
        "search 'demo-run': running, 2 done, 1 failed, 0 pending of 4 (random controller, reward mnas-soft, "
        "accuracy from label, device local)",
        "best: trial #1, reward 0.7145, top-1 75.00%, 1.000 ms (predicted), 0.52 M MACs, 9,370 params",
        f"      {LARGE}",
    ]
    top = invoke("search", "top", "demo-run", "--k", "5", "--db", stored_run)
    assert [line.split()[:6] for line in top.output.splitlines()[2:]] == [
        ["1", "0.7145", "75.00%", "1.000", "predicted", "0.52"],
        ["0", "0.5249", "50.00%", "0.250", "predicted", "0.09"]]
    under = json.loads(invoke("search", "top", "demo-run", "--max-latency-ms", "0.5", "--json", "--db",
                              stored_run).output)
    assert [(t["number"], t["arch"], t["reward"]) for t in under] == [
        (0, SMALL, pytest.approx(0.5 * 0.5 ** -0.07 * 1.0))]


def test_the_live_display_line_names_progress_the_child_and_the_best():
    trial = {"number": 7, "status": "done", "accuracy": 0.873, "latency_ms": 0.8234, "latency_source": "measured",
             "reward": 0.81234}
    best = {**trial, "number": 3, "reward": 0.845, "accuracy": 0.9, "latency_ms": 0.5}
    line = display.event_line(TrialEvent(trial, 12, 40, best, 192.0, 580.4))
    assert line == ("[12/40] #7 top-1 87.30%  0.823 ms (measured)  reward 0.8123 | best #3 reward 0.8450 "
                    "(top-1 90.00%, 0.500 ms) | 3m12s elapsed, ETA 9m40s")
    best["arch"] = SMALL
    assert display.best_changed_line(TrialEvent(trial, 12, 40, best, 192.0, 580.4, True)) == f"  new best #3: {SMALL}"
    assert display.best_changed_line(TrialEvent(trial, 12, 40, best, 192.0, 580.4)) is None
    failed = {"number": 8, "status": "failed", "error": "latency: ConverterError: bad op"}
    assert display.event_line(TrialEvent(failed, 1, 5, None, 5.2, None)) == (
        "[1/5] #8 FAILED: latency: ConverterError: bad op | best none yet | 5s elapsed, ETA ?")
    assert [display.duration(s) for s in (0, 59.4, 60, 3599, 3600, 7440)] == ["0s", "59s", "1m00s", "59m59s",
                                                                              "1h00m", "2h04m"]


def test_a_run_s_latency_source_reads_as_one_line():
    measurement = {"runtime": "benchmark_model", "core": 7, "protocol": {
        "num_threads": 1, "num_runs": 50, "min_secs": 1.0, "repeats": 3}}
    predictor = {"table_id": 4, "calibration_id": 9}
    assert display.describe_latency({"source": "measured", "predictor": None, "measurement": measurement}) == (
        "whole-model measurements by benchmark_model (1 thread, >= 50 runs and 1.0 s in 3 repeats, core 7)")
    assert display.describe_latency({"source": "predicted", "predictor": predictor, "measurement": None}) == (
        "predictions of latency table #4 with calibration #9")
    assert display.describe_latency({"source": "mixed", "predictor": {"table_id": 4, "calibration_id": None},
                                     "measurement": {**measurement, "core": None}}) == (
        "mixed: whole-model measurements by benchmark_model (1 thread, >= 50 runs and 1.0 s in 3 repeats) where "
        "stored, else predictions of latency table #4 (raw sums, uncalibrated)")


def test_search_errors_name_the_bad_value(stored_run):
    no_teacher = invoke("search", "--db", stored_run, "--name", "x", "--target-ms", "1")
    assert no_teacher.exit_code == 1
    assert "reward source 'kd' distills from a teacher: give one (--teacher PATH)" in no_teacher.output
    no_target = invoke("search", "--db", stored_run, "--name", "x", "--reward-source", "label")
    assert "reward 'mnas-soft' weighs latency_ms: give target_ms (--target-ms)" in no_target.output
    bad_name = invoke("search", "--db", stored_run, "--name", "no spaces", "--reward-source", "label",
                      "--target-ms", "1")
    assert "search name must be 1-128 letters" in bad_name.output
    changed = invoke("search", "--db", stored_run, "--name", "demo-run", "--target-ms", "2", "--proxy-epochs", "3",
                     "--val-size", "60")
    assert changed.output == (
        "Error: search run 'demo-run' exists with other settings; resume it with the same ones, or choose a new "
        "--name. Differences (stored -> given): target_ms: 0.5 -> 2.0; data.val_size: 50 -> 60; proxy.epochs: 1 -> 3\n")
    unknown = invoke("search", "status", "nope", "--db", stored_run)
    assert unknown.exit_code == 1 and "no search run named 'nope'; known runs: demo-run" in unknown.output
    neither = invoke("export", "--run", "demo-run", "--out", "s.tflite", "--db", stored_run)
    assert "give exactly one of --best or --trial N" in neither.output
    assert "use them with --run" in invoke("export", "--arch", SMALL, "--best", "--out", "s.tflite").output
    failed = invoke("export", "--run", "demo-run", "--trial", "2", "--out", "s.tflite", "--db", stored_run)
    assert "trial 2 of 'demo-run' is failed: TrainingDiverged: loss became nan at step 1" in failed.output
    missing = invoke("export", "--run", "demo-run", "--trial", "9", "--out", "s.tflite", "--db", stored_run)
    assert "search run 'demo-run' has no trial 9 (trials 0-2)" in missing.output


def test_controller_options_out_of_range_unknown_or_of_another_controller_are_errors_naming_the_option(stored_run):
    new_run = ["search", "--db", stored_run, "--name", "new", "--space", "lut-test", "--reward-source", "label",
               "--target-ms", "1"]
    out_of_range = invoke(*new_run, "--ppo-clip-ratio", "1.5")
    assert out_of_range.exit_code == 2
    assert "Invalid value for '--ppo-clip-ratio': 1.5 is not in the range 0.0<x<=1.0." in out_of_range.output
    assert "No such option '--ppo-lr'" in invoke(*new_run, "--ppo-lr", "0.1").output
    not_a_number = invoke(*new_run, "--ppo-max-grad-norm", "off")
    assert not_a_number.exit_code == 2
    assert "Invalid value for '--ppo-max-grad-norm': 'off' is not a valid float range." in not_a_number.output
    assert "Invalid value for '--ppo-hidden-units': 'none' is not a valid integer range." in invoke(
        *new_run, "--ppo-hidden-units", "none").output  # None means nothing for it
    tournament = invoke(*new_run, "--controller", "evolution", "--evolution-population-size", "2")
    assert tournament.output == ("Error: tournament_size must be <= population_size=2, got 4 "
                                 "(--evolution-tournament-size, --evolution-population-size)\n")
    resumed = invoke("search", "--db", stored_run, "--name", "demo-run", "--ppo-learning-rate", "0.01")
    assert resumed.output == ("Error: --ppo-learning-rate is an option of --controller ppo; this search's controller "
                              "is random\n")


def test_changing_a_controller_option_on_resume_is_refused_like_any_setting(stored_run):
    store = open_store(stored_run)
    config = SearchConfig(name="evo-run", space="lut-test", controller="evolution", reward_source="label",
                          target_ms=0.5, trials=4, batch_size=2, data={"source": "demo", "val_size": 50})
    runs.create_or_resume(store, config, {"input_shape": [32, 32, 1], "classes": 10})
    store.close()
    changed = invoke("search", "--db", stored_run, "--name", "evo-run", "--evolution-population-size", "8")
    assert changed.output == (
        "Error: search run 'evo-run' exists with other settings; resume it with the same ones, or choose a new "
        "--name. Differences (stored -> given): controller_options.population_size: 16 -> 8\n")


def test_early_stop_takes_a_rule_a_bare_flag_means_median_and_changing_it_on_resume_is_refused(stored_run):
    for given, rule in ((["--early-stop", "--target-ms", "0.5"], "median"), (["--early-stop", "halving"], "halving")):
        refused = invoke("search", "--db", stored_run, "--name", "demo-run", *given)
        assert refused.output == (
            "Error: search run 'demo-run' exists with other settings; resume it with the same ones, or choose a new "
            f"--name. Differences (stored -> given): early_stop: None -> {rule!r}\n")
    unknown = invoke("search", "--db", stored_run, "--name", "demo-run", "--early-stop", "fastest")
    assert unknown.exit_code == 2
    assert "Invalid value for '--early-stop': 'fastest' is not one of 'median', 'halving'." in unknown.output


def test_workers_with_a_ray_address_is_refused_naming_both(stored_run):
    from search.executors import SequentialExecutor, make_executor

    both = invoke("search", "--db", stored_run, "--name", "demo-run", "--executor", "ray", "--ray-address",
                  "ray://head:10001", "--workers", "2")
    assert (both.exit_code, both.output) == (1, (
        "Error: --workers and --ray-address do not go together: --workers sizes this machine's workers (or the "
        "local Ray started without --ray-address); on the cluster at --ray-address each child takes one CPU and the "
        "cluster's CPUs decide how many train at once. Leave out --workers.\n"))
    with pytest.raises(ValueError, match="^--workers and --ray-address do not go together"):
        make_executor("ray", 1, "ray://head:10001")
    assert isinstance(make_executor("local"), SequentialExecutor) and make_executor("local", 3).workers == 3


def test_cores_per_worker_beyond_this_machine_s_cores_is_refused_before_any_child_trains(stored_run):
    cores = len(os.sched_getaffinity(0))
    result = invoke("search", "--db", stored_run, "--name", "demo-run", "--workers", "2", "--cores-per-worker",
                    str(cores))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --cores-per-worker {cores} with 2 worker(s) needs {2 * cores} cores; "
                                    f"this process may run on {cores} (")
    assert result.output.endswith("). Lower --cores-per-worker or --workers.\n")
    on_ray = invoke("search", "--db", stored_run, "--name", "demo-run", "--executor", "ray", "--cores-per-worker", "1")
    assert (on_ray.exit_code, on_ray.output) == (1, "Error: --cores-per-worker pins local worker processes; with "
                                                    "--executor ray, Ray places each child (one CPU each)\n")


def test_export_run_trains_the_child_exports_scores_and_measures_it(stored_run, tmp_path):
    out = tmp_path / "student.tflite"
    result = invoke("export", "--run", "demo-run", "--trial", "0", "--epochs", "1", "--out", str(out), "--json",
                    "--db", stored_run)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record == json.loads(out.with_suffix(".json").read_text())
    assert (record["trial"], record["arch"], record["trained_with"], record["epochs"]) == (0, SMALL, "label", 1)
    assert record["test_examples"] == 2000 and 0.0 <= record["test_top1"] <= 1.0
    assert out.stat().st_size == record["size_bytes"] and out.with_suffix(".keras").exists()
    assert record["parity"].startswith("parity ok") and record["latency_ms"] > 0 and record["device"] == "local"
    assert not out.with_name(out.name + ".ckpt").exists()  # training finished: no resume state left


def test_how_a_search_runs_is_chosen_alike_by_search_and_both_experiments():
    for command in (["search"], ["experiment", "relative-gain"], ["experiment", "teachers"]):
        help_text = invoke(*command, "--help").output
        for flag in ("--workers", "--executor", "--logdir", "--allow-latency-change", "--early-stop"):
            assert f"  {flag} " in help_text, (command, flag)
