"""The search loop end to end on real data, real training and a real latency table: records, resume, failures.

Children come from the two-block ``lut-test`` space (a few seconds each) trained for one epoch on 64
demo images; latencies are predictions of a table measured on this host for that space.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from sqlalchemy import select

from db_fixtures import db_url, sqlite_url  # noqa: F401  (fixtures)
from run_fixtures import TINY_TARGET, build_tiny_lut, tiny_search
from latency_db.predictor import LutPredictor
from latency_db.schema import SearchRun, Trial
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings
from search.controller import make_controller
from search.loop import run_search
from search.rewards import FAILED_REWARD, compute_reward

TESTS = Path(__file__).parent


@pytest.fixture
def lut_url(db_url, tiny_space):  # noqa: F811
    return build_tiny_lut(db_url)


def trials_of(store, name):
    run = runs.get_run(store, name)
    return runs.all_trials(store, run.id)


def test_a_search_records_every_child_with_its_latency_accuracy_and_reward(lut_url, tiny_space):
    store = open_store(lut_url)
    events = []
    summary = run_search(store, tiny_search("plain"), on_event=events.append)
    trials = trials_of(store, "plain")
    predictor = LutPredictor.load(store, "local", tiny_space, TINY_TARGET)
    expected = [p.tokens for step in (0, 1) for p in make_controller("random", tiny_space, 0).propose(step, 2)]
    assert [t.number for t in trials] == [0, 1, 2, 3] and [t.step for t in trials] == [0, 0, 1, 1]
    assert [tuple(t.tokens) for t in trials] == expected
    for t in trials:
        assert t.status == "done" and t.latency_source == "predicted" and t.attempts == 1
        assert t.latency_ms == predictor.predict_ms(tiny_space.parse(t.arch))
        assert 0.0 <= t.accuracy <= 1.0 and t.train["train_examples"] == 64 and t.train["val_examples"] == 50
        assert t.reward_terms == compute_reward("mnas-soft", t.accuracy, latency_ms=t.latency_ms, target_ms=0.05)
        assert t.reward == t.reward_terms["reward"]
    assert [e.finished for e in events] == [1, 2, 3, 4] and [e.trial["number"] for e in events] == [0, 1, 2, 3]
    best = max(trials, key=lambda t: (t.reward, -t.number))
    assert summary["status"] == "finished" and summary["best"]["number"] == best.number
    assert summary["trials"] == {"pending": 0, "done": 4, "failed": 0, "excluded": 0}
    with store.session() as session:
        run = session.scalar(select(SearchRun))
        assert [s["step"] for s in run.controller_stats] == [0, 1] and run.controller_step == 2
        assert run.config["latency"] == {"earlier": [], "current": {
            "source": "predicted", "predictor": {"table_id": predictor.table_id, "calibration_id": None},
            "measurement": None}}
    store.close()


def test_a_child_that_diverges_is_recorded_with_its_reason_and_the_search_goes_on(lut_url):
    store = open_store(lut_url)
    diverging = ProxySettings(epochs=1, train_size=64, batch_size=32, learning_rate=1e30)
    summary = run_search(store, tiny_search("nan", trials=2, proxy=diverging))
    trials = trials_of(store, "nan")
    assert [t.status for t in trials] == ["failed", "failed"]
    assert all(t.reward == FAILED_REWARD and t.error.startswith("TrainingDiverged: loss became nan") for t in trials)
    assert summary["status"] == "finished" and summary["best"] is None
    store.close()


def test_without_a_latency_table_or_measure_the_search_stops_before_training(sqlite_url, tiny_space):  # noqa: F811,E501
    store = open_store(sqlite_url)
    with pytest.raises(ValueError, match=r"has no latency table for lut-test@.*; it has none yet; build it with: "
                                         r".*\n.*--measure"):
        run_search(store, tiny_search("no-lut"))
    assert runs.find_run(store, "no-lut") is None
    store.close()


def test_the_proxy_subset_is_named_for_its_size_and_keeps_the_split_s_fingerprint(tiny_space):
    from akd_tf import data
    from search.evaluate import full_training_data, run_training_data

    proxy, full = run_training_data(tiny_search("named")), full_training_data(tiny_search("named"))
    assert proxy.describe() == ("demo@train[mini_train][proxy-64]: 64 mini-train / 50 mini-val examples, 10 classes, "
                                "fed at 32x32x1")
    assert full.mini_train.name == "demo@train[mini_train]" and proxy.mini_val.fingerprint == full.mini_val.fingerprint
    _, split = data.split_train_val(full.mini_train, val_size=64, seed=0)
    assert proxy.mini_train.fingerprint == split.fingerprint  # teacher caches and stored runs key on it
    assert data.labels_array(proxy.mini_train).tolist() == data.labels_array(split).tolist()


def test_latency_comes_from_one_source_and_a_stored_measurement_counts_only_if_taken_the_search_s_way(
        lut_url, tiny_space):
    from akd_tf.benchmark import WHOLE_MODEL_SETTINGS, latency_us
    from latency_db.measure import measure_arch
    from latency_db.schema import Measurement
    from run_fixtures import QUICK, RUN_A
    from search.latency import LatencySource

    store = open_store(lut_url)
    quick, whole = tiny_space.parse(RUN_A[0][0]), tiny_space.parse(RUN_A[1][0])
    quick_row = measure_arch(store, "local", quick, TINY_TARGET, settings=QUICK)  # `akd-tf latency measure --runs 10`
    whole_row = measure_arch(store, "local", whole, TINY_TARGET)  # as a search measures
    predictor = LutPredictor.load(store, "local", tiny_space, TINY_TARGET)
    quick_ms, whole_ms = predictor.predict_ms(quick), predictor.predict_ms(whole)

    def sources(latency):
        return [(c.source, c.measurement_id, c.latency_ms) for c in latency.latencies([quick, whole])]

    predicted = LatencySource(store, "local", TINY_TARGET, measure=False)
    assert sources(predicted) == [("predicted", None, quick_ms), ("predicted", None, whole_ms)]
    mixed = LatencySource(store, "local", TINY_TARGET, measure=False, mix=True)
    assert sources(mixed) == [("predicted", None, quick_ms), ("measured", whole_row.id, latency_us(whole_row) / 1000)]
    measured = LatencySource(store, "local", TINY_TARGET, measure=True)
    again = measured.latencies([quick, whole])
    assert [c.source for c in again] == ["measured", "measured"] and again[1].measurement_id == whole_row.id
    assert again[0].measurement_id not in (None, quick_row.id)  # measured anew, the search's way
    with store.session() as session:
        taken = session.get(Measurement, again[0].measurement_id).settings
    assert measured.matches(taken) and not measured.matches(quick_row.settings)
    assert not measured.matches({**taken, "runtime": "ai-edge-litert 0.0.1"})
    assert not measured.matches({**taken, "num_runs": WHOLE_MODEL_SETTINGS.num_runs + 1})
    assert not measured.matches({**taken, "repeats": 1})  # one stretch of runs, not the search's three repeats
    assert [source.identity(tiny_space)["source"] for source in (predicted, mixed, measured)] == [
        "predicted", "mixed", "measured"]
    assert measured.identity(tiny_space) == {"source": "measured", "predictor": None, "measurement": {
        "runtime": taken["runtime"], "core": None,
        "protocol": {key: value for key, value in taken.items() if key not in ("core", "runtime")}}}
    with pytest.raises(ValueError, match="either measures every child"):
        LatencySource(store, "local", TINY_TARGET, measure=True, mix=True)
    store.close()


def test_a_network_is_measured_once_as_its_canonical_form_whatever_tokens_built_it(lut_url, tiny_space):
    from akd_tf.canonical import canonical_arch
    from latency_db.measure import measure_arch
    from latency_db.query import query_latency
    from latency_db.schema import Measurement
    from search.latency import LatencySource

    store = open_store(lut_url)
    # token lists that are not their network's canonical form (tokens that build nothing, a useless skip op)
    redundant = [a for a in tiny_space.sample_many(200, 3) if canonical_arch(a) != a]
    same = redundant[0]
    other = next(a for a in redundant if canonical_arch(a) != canonical_arch(same))
    stored_before = measure_arch(store, "local", other, TINY_TARGET)  # under its own tokens, as searches did
    measured = LatencySource(store, "local", TINY_TARGET, measure=True)

    def measured_archs():
        with store.session() as session:
            return sorted(row.model.arch for row in session.scalars(select(Measurement)))

    before = measured_archs()
    first, again, third = measured.latencies([same, canonical_arch(same), other])
    assert measured_archs() == sorted(before + [canonical_arch(same).to_string()])  # one network measured, once
    assert (again.latency_ms, again.measurement_id, again.source) == (first.latency_ms, first.measurement_id,
                                                                      "measured")
    assert again.seconds == 0.0 and first.seconds > 0.0  # the first of the network paid for it
    assert (third.measurement_id, third.seconds) == (stored_before.id, 0.0)  # found under the tokens it was taken
    [later] = measured.latencies([same])  # found stored, under its canonical form
    assert (later.measurement_id, later.seconds) == (first.measurement_id, 0.0)
    [queried] = query_latency(store, "local", tiny_space, [same], TINY_TARGET)  # as `akd-tf latency query` finds it
    assert (queried.source, queried.latency_ms) == ("measured", first.latency_ms)
    assert measured_archs() == sorted(before + [canonical_arch(same).to_string()])
    store.close()


# --- resume -----------------------------------------------------------------------------------------------------

def test_a_resumed_run_reports_a_new_best_only_when_its_best_changes(sqlite_url, tiny_space):  # noqa: F811
    from run_fixtures import RUN_A, store_run
    from search.display import best_changed_line
    from search.loop import _Progress

    store = open_store(sqlite_url)
    store_run(store, "resumed", RUN_A[:3], "label")  # its best: #1, found before this session
    run = runs.get_run(store, "resumed")
    runs.add_trials(store, run.id, 1, [runs.NewTrial(tiny_space.parse(arch).tokens) for arch, _, _ in RUN_A[3:5]])
    events = []
    progress = _Progress(store, run.id, 5, events.append)
    for trial, accuracy in zip(runs.step_trials(store, run.id, 1), (0.2, 0.99)):
        runs.record_latency(store, trial.id, latency_ms=0.5, source="predicted", measurement_id=None, seconds=0.0)
        terms = compute_reward("mnas-soft", accuracy, latency_ms=0.5, target_ms=0.5)
        progress.report(runs.record_result(store, trial.id, accuracy=accuracy, reward_terms=terms, train={},
                                           train_seconds=1.0, worker="w:1"))
    progress.report(runs.get_trial_by_id(store, runs.step_trials(store, run.id, 1)[0].id))
    assert [(e.trial["number"], e.best["number"], e.new_best) for e in events] == [
        (3, 1, False), (4, 4, True), (3, 4, False)]
    assert [best_changed_line(e) for e in events] == [None, f"  new best #4: {RUN_A[4][0]}", None]
    store.close()


SEARCH_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from db_fixtures import tiny_space
tiny_space()
from akd_tf.cli import main
main(sys.argv[1:])
"""


def search_process(url, name, *extra):
    args = ["search", "--db", url, "--name", name, "--space", "lut-test", "--controller", "ppo",
            "--reward-source", "label", "--target-ms", "0.05", "--trials", "4", "--batch-size", "2",
            "--val-size", "50", "--proxy-epochs", "1", "--proxy-train-size", "64", "--proxy-batch-size", "32",
            "--ppo-epochs", "2", *extra]
    return subprocess.Popen([sys.executable, "-c", SEARCH_SCRIPT.format(tests=str(TESTS)), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_search_killed_mid_step_resumes_without_duplicates_or_losses(lut_url, tiny_space):
    if not lut_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the process-kill protocol; the store tests cover both")
    store = open_store(lut_url)
    process = search_process(lut_url, "killed")
    deadline = time.monotonic() + 300
    done = []
    while not done and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        with store.session() as session:
            done = session.scalars(select(Trial).where(Trial.status == "done")).all()
    assert done, process.communicate()[0]
    os.kill(process.pid, signal.SIGKILL)  # mid-step: trial 0 is stored, trial 1 is training or about to
    process.wait()
    before = {t.number: (t.accuracy, t.reward, t.finished_at) for t in trials_of(store, "killed")
              if t.status == "done"}
    assert 0 in before and len(before) < 4

    resumed = search_process(lut_url, "killed")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resuming search 'killed'" in output
    trials = trials_of(store, "killed")
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.status == "done" for t in trials)
    assert {n: (t.accuracy, t.reward, t.finished_at) for n, t in enumerate(trials) if n in before} == before
    assert all(t.attempts == 1 for t in trials if t.number in before)  # finished children were not run again
    fresh = make_controller("ppo", tiny_space, 0, epochs=2)
    assert [tuple(t.tokens) for t in trials[:2]] == [p.tokens for p in fresh.propose(0, 2)]
    with store.session() as session:
        run = session.scalar(select(SearchRun).where(SearchRun.name == "killed"))
        assert [s["step"] for s in run.controller_stats] == [0, 1]  # each step learnt from exactly once
        assert run.config["settings"]["controller_options"] == asdict(fresh.settings)
        assert [s["epochs"] for s in run.controller_stats] == [2, 2]  # --ppo-epochs 2, stored and used
        assert run.status == "finished"
    store.close()


def test_a_run_stored_with_the_proxy_subset_s_old_name_resumes(sqlite_url, tiny_space):  # noqa: F811
    store = open_store(sqlite_url)
    facts = {"input_shape": [32, 32, 1], "classes": 10, "data_fingerprint": "a/b", "teacher_fingerprint": None}
    runs.create_or_resume(store, tiny_search("old"), {**facts, "dataset": "demo@train[mini_train][mini_val]"})
    run, resumed = runs.create_or_resume(store, tiny_search("old"),
                                         {**facts, "dataset": "demo@train[mini_train][proxy-64]"})
    assert resumed and run.config["facts"]["dataset"] == "demo@train[mini_train][mini_val]"  # stored data kept
    with pytest.raises(ValueError, match=r"Differences \(stored -> given\): data_fingerprint: 'a/b' -> 'a/c'$"):
        runs.create_or_resume(store, tiny_search("old"), {**facts, "data_fingerprint": "a/c",
                                                          "dataset": "demo@train[mini_train][proxy-64]"})
    store.close()


def test_a_run_records_its_space_version_and_an_edited_space_cannot_resume_it(lut_url, tiny_space):
    store = open_store(lut_url)
    run_search(store, tiny_search("versioned", trials=2))
    assert runs.get_run(store, "versioned").config["facts"]["space_version"] == tiny_space.version
    facts = {"input_shape": [32, 32, 1], "classes": 10, "data_fingerprint": "a/b", "teacher_fingerprint": None}
    runs.create_or_resume(store, tiny_search("edited"), {**facts, "space_version": "1234abcd"})
    with pytest.raises(ValueError, match=r"Differences \(stored -> given\): space_version: '1234abcd' -> '0badc0de'$"):
        runs.create_or_resume(store, tiny_search("edited"), {**facts, "space_version": "0badc0de"})
    # A run stored before runs recorded the space's version resumes and takes today's, then is held to it.
    runs.create_or_resume(store, tiny_search("before"), facts)
    run, resumed = runs.create_or_resume(store, tiny_search("before"), {**facts, "space_version": "1234abcd"})
    assert resumed and run.config["facts"]["space_version"] == "1234abcd"
    assert runs.get_run(store, "before").config["facts"]["space_version"] == "1234abcd"
    with pytest.raises(ValueError, match=r"space_version: '1234abcd' -> '0badc0de'$"):
        runs.create_or_resume(store, tiny_search("before"), {**facts, "space_version": "0badc0de"})
    store.close()


def test_a_resumed_run_whose_latency_source_changed_is_refused_unless_the_change_is_allowed(lut_url, tiny_space):
    from run_fixtures import first_child_priced_by_an_earlier_source
    from search.display import summary_lines
    from search.latency import LatencySource

    store = open_store(lut_url)
    moved = tiny_search("moved", trials=1, batch_size=1)
    predictor = LutPredictor.load(store, "local", tiny_space, TINY_TARGET)
    # The run began under a calibration #7 of the same table that has since been replaced, and a crash came after
    # its first child was priced, before it trained.
    before, current, first = first_child_priced_by_an_earlier_source(store, moved)
    run = runs.get_run(store, "moved")

    with pytest.raises(ValueError, match=(
            rf"^search run 'moved' priced its children with predictions of latency table #{predictor.table_id} with "
            rf"calibration #7; they would now be priced with predictions of latency table #{predictor.table_id} "
            r"\(raw sums, uncalibrated\), so later children would not be comparable with earlier ones. Resume with "
            r"--allow-latency-change ")):
        run_search(store, moved)
    assert runs.get_run(store, "moved").config["latency"] == {"current": before, "earlier": []}
    assert [t.status for t in trials_of(store, "moved")] == ["pending"]  # nothing trained

    summary = run_search(store, moved, allow_latency_change=True)
    assert runs.get_run(store, "moved").config["latency"] == {
        "current": current, "earlier": [{"latency": before, "until_trial": 1, "priced": [0]}]}
    assert [(t.status, t.latency_ms) for t in trials_of(store, "moved")] == [("done", 0.04)]  # kept its price
    assert summary_lines(summary)[1] == (
        f"latency: predictions of latency table #{predictor.table_id} (raw sums, uncalibrated); before trial #1: "
        f"predictions of latency table #{predictor.table_id} with calibration #7")

    # A later child of the same network reuses the first one's training, not its price: that came from the
    # source before the change, so it is priced by the current one (one attempt) and rewarded with that.
    runs.add_trials(store, run.id, 1, [runs.NewTrial(first.tokens)])
    run_search(store, replace(moved, trials=2))
    original, again = trials_of(store, "moved")
    [now] = LatencySource(store, "local", TINY_TARGET, measure=False).latencies([tiny_space.parse(first.arch)])
    assert now.latency_ms != 0.04
    assert (again.status, again.reused_from, again.attempts) == ("done", original.id, 1)
    assert again.accuracy == original.accuracy
    assert (again.latency_ms, again.latency_source) == (now.latency_ms, "predicted")
    assert again.reward == compute_reward(moved.reward, original.accuracy, latency_ms=now.latency_ms, mmacs=again.mmacs,
                                          target_ms=moved.target_ms, target_mmacs=moved.target_mmacs)["reward"]
    assert original.latency_ms == 0.04  # its own price stays what it was
    store.close()


def test_a_change_of_latency_source_records_every_trial_the_old_one_priced_even_out_of_order(
        sqlite_url, tiny_space):  # noqa: F811
    store = open_store(sqlite_url)
    run, _ = runs.create_or_resume(store, tiny_search("order"), {"input_shape": [32, 32, 1], "classes": 10})
    runs.record_latency_source(store, run.id, {"source": "a"})
    runs.add_trials(store, run.id, 0, [runs.NewTrial(p.tokens) for p in make_controller("random", tiny_space, 0)
                                       .propose(0, 3)])
    first, second, third = runs.step_trials(store, run.id, 0)
    for trial in (first, third):  # two workers: #2 started (and was priced) before #1
        runs.record_latency(store, trial.id, latency_ms=0.1, source="predicted", measurement_id=None, seconds=0.0)
    runs.record_latency_source(store, run.id, {"source": "b"})
    [earlier] = runs.get_run(store, "order").config["latency"]["earlier"]
    assert earlier == {"latency": {"source": "a"}, "until_trial": 1, "priced": [0, 2]}
    runs.record_latency(store, second.id, latency_ms=0.2, source="predicted", measurement_id=None, seconds=0.0)
    assert runs.priced_by_earlier_source(store, [first, second, third]) == {first.id, third.id}
    store.close()


def test_resuming_with_other_settings_is_refused_and_the_budget_can_grow(sqlite_url):  # noqa: F811
    store = open_store(sqlite_url)
    facts = {"input_shape": [32, 32, 1], "classes": 10}
    run, resumed = runs.create_or_resume(store, tiny_search("grow"), facts)
    assert not resumed
    runs.add_trials(store, run.id, 0, [runs.NewTrial((0, 0, 0, 0, 0, 0) * 2), runs.NewTrial((1, 0, 0, 0, 0, 0) * 2)])
    runs.add_trials(store, run.id, 0, [runs.NewTrial((1, 0, 0, 0, 0, 0) * 2)])  # a step is added once
    assert runs.trial_count(store, run.id) == 2
    with pytest.raises(ValueError, match=r"exists with other settings.*target_ms: 0.05 -> 0.1"):
        runs.create_or_resume(store, tiny_search("grow", target_ms=0.1), facts)
    with pytest.raises(ValueError, match=r"teacher_fingerprint: None -> 'abc'"):
        runs.create_or_resume(store, tiny_search("grow"), {**facts, "teacher_fingerprint": "abc"})
    with pytest.raises(ValueError, match=r"already has 2 trials; a budget of 1 would drop some"):
        runs.create_or_resume(store, tiny_search("grow", trials=1), facts)
    run, resumed = runs.create_or_resume(store, tiny_search("grow", trials=9), facts)
    assert resumed and run.trials_budget == 9 and runs.run_config(run).trials == 9
    store.close()
