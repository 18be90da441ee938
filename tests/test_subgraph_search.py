"""The subgraph strategy end to end: a run carves a real teacher on this host, stores its trials, resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import select

from akd_tf.cli import main as cli_main
from akd_tf.errors import InvalidInput
from latency_db.schema import Measurement, Trial
from latency_db.store import open_store
from search import runs
from search.config import SUBGRAPH_CONTROLLER, SUBGRAPH_SPACE, ProxySettings, SearchConfig, SubgraphSettings
from search.subgraph import carve_trial, next_strength, run_subgraph_search

SETTINGS = SubgraphSettings(cost="macs", tolerance=0.1, first_strength=0.01, min_strength=1e-4, max_strength=10.0)


def test_next_strength_goes_up_tenfold_until_fast_enough_then_splits_the_bracket():
    target = 1.0
    assert next_strength([], target, SETTINGS) == 0.01
    assert next_strength([(0.01, 2.0)], target, SETTINGS) == pytest.approx(0.1)
    assert next_strength([(0.01, 2.0), (0.1, 1.5)], target, SETTINGS) == pytest.approx(1.0)
    assert next_strength([(0.01, 2.0), (0.1, 0.5)], target, SETTINGS) == pytest.approx(np.sqrt(0.001))
    assert next_strength([(0.01, 0.3)], target, SETTINGS) == pytest.approx(0.001)
    assert next_strength([(0.01, 2.0), (0.1, 0.5), (0.0316, 1.05)], target, SETTINGS) is None  # within 10%
    assert next_strength([(0.01, 0.95)], target, SETTINGS) is None
    assert next_strength([(1.0, 2.0), (1.04, 0.5)], target, SETTINGS) is None  # too narrow to split
    assert next_strength([(10.0, 2.0)], target, SETTINGS) is None  # the strongest allowed is still too slow
    assert next_strength([(5.0, 2.0)], target, SETTINGS) == 10.0
    assert next_strength([(1e-4, 0.2)], target, SETTINGS) is None


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    from akd_tf.teachers import cifar_resnet

    import tf_keras as keras

    keras.utils.set_random_seed(3)
    model = cifar_resnet(1, (32, 32, 1), 10)  # ResNet-8: three residual blocks
    path = tmp_path_factory.mktemp("teacher") / "resnet8.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory):
    """150 training and 40 test images of 32x32x1 in 10 classes: a small data set with a test split."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (150, 32, 32, 1), dtype=np.uint8), y=np.arange(150) % 10,
             x_test=rng.integers(0, 256, (40, 32, 32, 1), dtype=np.uint8), y_test=np.arange(40) % 10)
    return str(path)


def _config(name: str, teacher: str, data: str, **overrides) -> SearchConfig:
    values = dict(name=name, strategy="subgraph", space=SUBGRAPH_SPACE, controller=SUBGRAPH_CONTROLLER,
                  measure=True, teachers=(teacher,), target_ms=0.1, trials=3,
                  data={"source": data, "val_size": 50},
                  proxy=ProxySettings(epochs=1, train_size=64, batch_size=32),
                  subgraph=replace(SETTINGS, gate_epochs=2, gate_learning_rate=0.3))
    values.update(overrides)
    return SearchConfig(**values)


def _trials(store, name):
    with store.session() as session:
        run = runs.get_run(store, name)
        return list(session.scalars(select(Trial).where(Trial.run_id == run.id).order_by(Trial.number)))


def test_a_subgraph_run_measures_each_student_and_follows_the_strength_rule(teacher_path, npz_data, tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    said = []
    config = _config("carve", teacher_path, npz_data)
    summary = run_subgraph_search(store, config, cache_dir=str(tmp_path / "cache"), say=said.append)
    trials = _trials(store, "carve")
    assert summary["status"] == "finished" and 1 <= len(trials) <= 3
    assert any("the teacher takes" in line for line in said) and said[1].startswith("started subgraph search 'carve'")
    results = []
    for trial in trials:  # each strength is what the rule gives from the trials before it
        assert trial.train["strength"] == pytest.approx(next_strength(results, config.target_ms, config.subgraph))
        results.append((trial.train["strength"], trial.latency_ms))
        with store.session() as session:
            measurement = session.get(Measurement, trial.measurement_id)
            assert trial.latency_ms == pytest.approx(measurement.min_us / 1000)
        assert trial.latency_source == "measured" and trial.status == "done" and trial.tokens == []
        student, network = carve_trial(config, trial)
        assert network.key == trial.arch and student.count_params() == trial.params
    assert next_strength(results, config.target_ms, config.subgraph) is None or len(trials) == config.trials
    slow, fast = max(trials, key=lambda t: t.latency_ms), min(trials, key=lambda t: t.latency_ms)
    if slow.id != fast.id:
        assert slow.train["strength"] < fast.train["strength"] and slow.params >= fast.params

    from search.report import NOT_A_SPACE, write_report

    report = write_report(store, "carve", tmp_path / "report")
    assert "kept.png" in report.figures and report.skipped["pca.png"] == NOT_A_SPACE
    best = max(trials, key=lambda t: t.reward)
    assert f"trial #{best.number}" in report.figures["kept.png"]

    out = tmp_path / "student.tflite"
    result = cli_main_result(["export", "--run", "carve", "--best", "--epochs", "1", "--out", str(out),
                              "--db", f"sqlite:///{tmp_path}/db.sqlite", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["arch"] == best.arch and record["params"] == best.params and record["device"] == "local"
    assert out.is_file() and record["latency_ms"] > 0


def test_a_macs_target_is_carved_towards_by_the_students_macs(teacher_path, npz_data, tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    config = _config("macs", teacher_path, npz_data, target_ms=None, target_mmacs=5.0, reward="flops", trials=2)
    run_subgraph_search(store, config, cache_dir=str(tmp_path / "cache"))
    trials = _trials(store, "macs")
    results = []
    for trial in trials:
        assert trial.train["strength"] == pytest.approx(next_strength(results, 5.0, config.subgraph))
        results.append((trial.train["strength"], trial.mmacs))
        assert trial.reward_terms["cost"] == "mmacs" and trial.latency_ms > 0
    with pytest.raises(InvalidInput, match=r"--target-mmacs 500: the teacher itself takes [0-9.]+ M MACs on local"):
        run_subgraph_search(store, _config("macs-high", teacher_path, npz_data, target_ms=None, target_mmacs=500.0,
                                           reward="flops"))


def test_targets_the_teacher_cannot_be_carved_to_are_errors_before_training(teacher_path, npz_data, tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    with pytest.raises(InvalidInput, match=r"--target-ms 50: the teacher itself takes [0-9.]+ ms on local"):
        run_subgraph_search(store, _config("slow-target", teacher_path, npz_data, target_ms=50.0))
    with pytest.raises(InvalidInput, match=r"--target-ms 0.0001 is below the fastest network this teacher can be "
                                           r"carved into: [0-9.]+ ms on local"):
        run_subgraph_search(store, _config("fast-target", teacher_path, npz_data, target_ms=0.0001))
    assert runs.find_run(store, "slow-target") is None and runs.find_run(store, "fast-target") is None


def test_subgraph_settings_are_checked():
    with pytest.raises(InvalidInput, match="carves a student out of one teacher model"):
        _config("two", "a.keras", "demo", teachers=("a.keras", "b.keras")).validate()
    with pytest.raises(InvalidInput, match="give target_ms"):
        _config("none", "a.keras", "demo", target_ms=None).validate()
    with pytest.raises(InvalidInput, match="subgraph cost must be one of latency, macs, units, got 'flops'"):
        _config("cost", "a.keras", "demo", subgraph=replace(SETTINGS, cost="flops")).validate()


def test_an_interrupted_subgraph_run_resumes_without_repeating_a_finished_strength(teacher_path, npz_data,
                                                                                   tmp_path):
    db = f"sqlite:///{tmp_path}/db.sqlite"
    args = ["search", "--strategy", "subgraph", "--name", "killed", "--teacher", teacher_path, "--target-ms", "0.1",
            "--dataset", npz_data, "--trials", "3", "--val-size", "50", "--proxy-epochs", "1",
            "--proxy-train-size", "64", "--proxy-batch-size", "32", "--subgraph-cost", "macs", "--gate-lr", "0.3",
            "--lambda-start", "0.0001", "--db", db, "--cache-dir", str(tmp_path / "cache")]
    log = tmp_path / "search.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", "from akd_tf.cli import main; main()", *args],
                                   stdout=out, stderr=subprocess.STDOUT)
    store = open_store(db)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if runs.find_run(store, "killed") is not None and _trials(store, "killed"):
                break
            time.sleep(0.2)
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGKILL)  # in the middle of its second strength (the first removed nothing)
    finally:
        process.wait(timeout=30)
    first = _trials(store, "killed")
    assert len(first) == 1
    result = cli_main_result(args)
    assert result.exit_code == 0, result.output
    after = _trials(store, "killed")
    assert after[0].id == first[0].id and after[0].finished_at == first[0].finished_at
    strengths = [t.train["strength"] for t in after]
    assert len(set(strengths)) == len(strengths) and [t.number for t in after] == list(range(len(after)))
    assert "resuming subgraph search 'killed'" in result.output


def cli_main_result(args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli_main, args, catch_exceptions=False)


def test_experiment_strategies_tables_the_three_students_trained_and_measured_the_same_way(teacher_path, npz_data,
                                                                                           tmp_path):
    from db_fixtures import tiny_space

    from search.experiments import run_strategies, strategies_lines

    tiny_space()
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    base = SearchConfig(name="cmp", space="lut-test", controller="random", measure=True, teachers=(teacher_path,),
                        target_ms=0.05, trials=1, batch_size=1, data={"source": npz_data, "val_size": 50},
                        proxy=ProxySettings(epochs=1, batch_size=32),
                        subgraph=replace(SETTINGS, gate_learning_rate=0.3, first_strength=0.1))
    result = run_strategies(store, base, "cmp", tmp_path / "out", epochs=1, tolerance=10.0,
                            cache_dir=str(tmp_path / "cache"))
    rows = result["rows"]
    assert list(rows) == ["subgraph", "akd", "nas"]
    assert [rows[arm]["run"] for arm in rows] == ["cmp-subgraph", "cmp-akd", "cmp-nas"]
    assert runs.run_config(runs.get_run(store, "cmp-subgraph")).strategy == "subgraph"
    assert runs.run_config(runs.get_run(store, "cmp-nas")).reward_source == "label"
    for arm, row in rows.items():
        assert row["student"]["trained_with"] == "kd" and row["student"]["device"] == "local"
        assert row["accuracy"] == row["student"]["test_top1"] and row["student"]["test_examples"] == 40
        assert row["search_hours"] > 0 and row["latency_ms"] > 0 and (tmp_path / "out").joinpath(
            f"{arm}-t{row['trial']}.tflite").is_file()
    lines = strategies_lines(result)
    assert (tmp_path / "out" / "strategies.md").read_text() == "\n".join(lines) + "\n"
    assert lines[4].startswith("|---") and lines[5].startswith("| subgraph (carved out of the teacher) | ")


def test_a_subgraph_run_on_an_emulated_phone_measures_everything_through_the_farm(teacher_path, npz_data, tmp_path,
                                                                                  phones, adb_key):
    import threading

    from devicefarm.phones import register_phone
    from devicefarm.runner import PhoneLimits
    from devicefarm.worker import FarmWorker, WorkerOptions
    from latency_db.schema import Job

    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF placeholder for the emulated phone's benchmark_model\n")
    limits = PhoneLimits(cool_to_c=90.0, cool_timeout_s=0.0, poll_s=0.1)  # whole-model runs warm the phone
    register_phone(store, phones(profile="pixel4").address, name="p4", benchmark_binary=binary, limits=limits)
    worker = FarmWorker(store, ["p4"], worker_id="w", options=WorkerOptions(lease_seconds=5.0, poll_s=0.05,
                                                                            limits=limits))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        config = _config("phone", teacher_path, npz_data, device="p4", target_ms=0.05, trials=1,
                         subgraph=replace(SETTINGS, cost="latency", gate_learning_rate=0.3))
        said = []
        run_subgraph_search(store, config, cache_dir=str(tmp_path / "cache"), wait_timeout_s=120, say=said.append)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
    [trial] = _trials(store, "phone")
    with store.session() as session:
        jobs = list(session.scalars(select(Job)))
        measurement = session.get(Measurement, trial.measurement_id)
        assert measurement.device.name == "p4" and trial.latency_ms == pytest.approx(measurement.min_us / 1000)
    # the teacher, its smallest carving, its six weighted layers in branches (the latency cost) and the student
    assert len(jobs) == 2 + 6 + 1 and all(job.state == "done" for job in jobs)
    assert any("teacher layers measured on p4: 6 of 6" in line for line in said)


def test_execution_options_a_subgraph_run_cannot_honour_are_refused(tmp_path):
    result = cli_main_result(["search", "--strategy", "subgraph", "--name", "x", "--teacher", "t.keras",
                              "--target-ms", "1", "--workers", "2", "--logdir", str(tmp_path / "logs"),
                              "--db", f"sqlite:///{tmp_path}/db.sqlite"])
    assert result.exit_code == 2
    assert "--workers, --logdir: settings of the akd strategy's children" in result.output
    assert runs.find_run(open_store(f"sqlite:///{tmp_path}/db.sqlite"), "x") is None
