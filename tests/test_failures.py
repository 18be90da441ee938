"""search.failures and the trial bookkeeping it decides: which failure is whose fault, how attempts end, what is shown.

Nothing is trained here; the faults themselves are caused for real in tests/test_search_faults.py.
"""

import pytest
from click.testing import CliRunner

from akd_tf.cli import main
from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from latency_db.store import open_store
from search import display, runs
from search.config import ProxySettings, SearchConfig
from search.controller import make_controller
from search.failures import (ARCHITECTURE, FAILURE_KINDS, INFRASTRUCTURE, Failure, ray_failure, training_failure,
                             worker_died)
from search.rewards import FAILED_REWARD, compute_reward

SMALL = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"
LARGE = "mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n2"
MIDDLE = "dwconv_k3_se0_id_w1_n2:mbconv3_k3_se0_noskip_w1_n1"


def config(name: str, **overrides) -> SearchConfig:
    values = dict(name=name, space="lut-test", controller="random", reward_source="label", target_ms=0.5, trials=3,
                  batch_size=3, data={"source": "demo", "val_size": 50},
                  proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
    values.update(overrides)
    return SearchConfig(**values)


# --- the table ---------------------------------------------------------------------------------------------------

def test_only_a_diverged_training_is_the_architecture_s_fault():
    assert {name: kind.fault for name, kind in FAILURE_KINDS.items()} == {
        "diverged": ARCHITECTURE, "worker-died": INFRASTRUCTURE, "ray-task-died": INFRASTRUCTURE,
        "out-of-memory": INFRASTRUCTURE, "training-error": INFRASTRUCTURE, "conversion-failed": INFRASTRUCTURE,
        "measurement-failed": INFRASTRUCTURE, "farm-job-failed": INFRASTRUCTURE, "latency-unknown": INFRASTRUCTURE,
        "interrupted": INFRASTRUCTURE}
    with pytest.raises(ValueError, match=r"^unknown failure kind 'crashed'; known: diverged, worker-died, "):
        Failure("crashed", "?")


def test_training_errors_land_in_their_kinds():
    import tensorflow as tf

    from akd_tf.distill import TrainingDiverged

    assert training_failure(TrainingDiverged("loss became nan at step 3 (try a lower learning rate)")) == Failure(
        "diverged", "TrainingDiverged: loss became nan at step 3 (try a lower learning rate)")
    assert training_failure(MemoryError()) == Failure("out-of-memory", "MemoryError:")
    assert training_failure(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor\nmore")) == \
        Failure("out-of-memory", "ResourceExhaustedError: OOM when allocating tensor")
    assert training_failure(tf.errors.InternalError(None, None, "cuDNN launch failure")) == Failure(
        "training-error", "InternalError: cuDNN launch failure")
    assert training_failure(ValueError("Negative dimension size")) == Failure(
        "training-error", "ValueError: Negative dimension size")
    assert worker_died("A process in the process pool was terminated abruptly") == Failure(
        "worker-died", "worker died: A process in the process pool was terminated abruptly")
    assert not training_failure(TrainingDiverged("nan")).is_infrastructure
    assert training_failure(MemoryError()).is_infrastructure


def test_ray_errors_land_in_their_kinds():
    exceptions = pytest.importorskip("ray.exceptions")

    assert ray_failure(exceptions.NodeDiedError("node 1a2b died")) == Failure(
        "ray-task-died", "NodeDiedError: node 1a2b died")
    assert ray_failure(exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.")) == \
        Failure("out-of-memory", "OutOfMemoryError: Task was killed due to the node running low on memory.")
    assert ray_failure(exceptions.WorkerCrashedError()).kind == "ray-task-died"


# --- attempts, in the trials table -------------------------------------------------------------------------------

def stored_step(store, tiny_space, name, archs, **overrides):
    settings = config(name, **{"trials": len(archs), "batch_size": len(archs), **overrides})
    run, _ = runs.create_or_resume(store, settings, {"input_shape": [32, 32, 1], "classes": 10})
    runs.add_trials(store, run.id, 0, [runs.NewTrial(tiny_space.parse(a).tokens) for a in archs])
    return run, runs.step_trials(store, run.id, 0)


def done(store, trial, accuracy=0.5, latency_ms=0.25):
    runs.record_latency(store, trial.id, latency_ms=latency_ms, source="predicted", measurement_id=None, seconds=0.0)
    return runs.record_result(store, trial.id, accuracy=accuracy, train={}, train_seconds=2.0, worker="w:1",
                              reward_terms=compute_reward("mnas-soft", accuracy, latency_ms=latency_ms, target_ms=0.5))


def test_infrastructure_failures_are_retried_then_excluded_and_divergence_fails_at_once(sqlite_url, tiny_space):  # noqa: F811,E501
    store = open_store(sqlite_url)
    run, (a, b, c) = stored_step(store, tiny_space, "states", [SMALL, LARGE, MIDDLE], max_attempts=2)
    assert runs.mark_started(store, [a.id, b.id, c.id], 2) == []
    retried = runs.record_failure(store, a.id, worker_died("killed"), max_attempts=2, worker="host:7")
    diverged = runs.record_failure(store, b.id, Failure("diverged", "TrainingDiverged: loss became nan"),
                                   max_attempts=2, train_seconds=1.5)
    done(store, c)
    assert (retried.status, retried.attempts, retried.reward, retried.error, retried.worker) == (
        "pending", 1, None, "worker died: killed", "host:7")
    assert (diverged.status, diverged.attempts, diverged.reward, diverged.train_seconds) == (
        "failed", 1, FAILED_REWARD, 1.5)
    assert runs.mark_started(store, [a.id], 2) == []
    excluded = runs.record_failure(store, a.id, Failure("farm-job-failed", "farm job 3 failed: gave up"),
                                   max_attempts=2)
    assert (excluded.status, excluded.attempts, excluded.reward, excluded.error) == (
        "excluded", 2, None, "farm job 3 failed: gave up")
    assert excluded.attempt_failures == [
        {"attempt": 1, "kind": "worker-died", "reason": "worker died: killed"},
        {"attempt": 2, "kind": "farm-job-failed", "reason": "farm job 3 failed: gave up"}]
    assert diverged.attempt_failures == [{"attempt": 1, "kind": "diverged",
                                          "reason": "TrainingDiverged: loss became nan"}]
    summary = runs.run_status(store, "states")
    assert summary["trials"] == {"pending": 0, "done": 1, "failed": 1, "excluded": 1}
    assert summary["excluded"] == [{"kind": "farm-job-failed", "count": 1, "reason": "farm job 3 failed: gave up"}]
    assert runs.trial_dict(runs.get_trial_by_id(store, c.id))["attempt_failures"] == []
    store.close()


def test_an_attempt_the_search_never_recorded_is_recorded_as_interrupted_when_it_resumes(sqlite_url, tiny_space):  # noqa: F811,E501
    store = open_store(sqlite_url)
    _, (a,) = stored_step(store, tiny_space, "stopped", [SMALL], max_attempts=2)
    assert runs.mark_started(store, [a.id], 2) == []  # the search process dies here, recording nothing
    assert runs.mark_started(store, [a.id], 2) == []
    again = runs.get_trial_by_id(store, a.id)
    assert (again.status, again.attempts, again.attempt_failures) == (
        "pending", 2, [{"attempt": 1, "kind": "interrupted", "reason": "the search stopped during this attempt"}])
    assert runs.mark_started(store, [a.id], 2) == [a.id]  # and dies again: both attempts spent
    excluded = runs.get_trial_by_id(store, a.id)
    assert (excluded.status, excluded.attempts, excluded.error, len(excluded.attempt_failures)) == (
        "excluded", 2, "the search stopped during this attempt", 2)
    assert runs.mark_started(store, [a.id], 2) == []  # only pending trials start attempts
    store.close()


def test_a_worker_death_shared_with_other_children_counts_no_attempt_and_the_next_attempt_runs_alone(sqlite_url, tiny_space):  # noqa: F811,E501
    store = open_store(sqlite_url)
    _, (a, b) = stored_step(store, tiny_space, "shared", [SMALL, LARGE], max_attempts=2)
    assert runs.mark_started(store, [a.id, b.id], 2) == []
    shared = runs.record_failure(store, a.id, worker_died("broke"), max_attempts=2, counted=False)
    assert (shared.status, shared.attempts, shared.attempt_failures) == (
        "pending", 0, [{"attempt": 1, "kind": "worker-died", "reason": "worker died: broke", "counted": False}])
    assert runs.runs_alone(shared) and not runs.runs_alone(runs.get_trial_by_id(store, b.id))
    # Its next attempt is its first: the uncounted failure is neither an attempt nor an interrupted one.
    assert runs.mark_started(store, [a.id], 2) == []
    runs.release_attempts(store, [a.id])  # a pause uncounts the attempt it stopped, and only that one
    assert runs.get_trial_by_id(store, a.id).attempts == 0
    assert runs.mark_started(store, [a.id], 2) == []
    assert runs.mark_started(store, [a.id], 2) == []  # the search died during attempt 1: recorded as interrupted
    again = runs.get_trial_by_id(store, a.id)
    assert (again.attempts, [(f["attempt"], f["kind"]) for f in again.attempt_failures]) == (
        2, [(1, "worker-died"), (1, "interrupted")])
    assert not runs.runs_alone(again)  # an interrupted attempt says nothing about the pool
    own = runs.record_failure(store, a.id, worker_died("killed"), max_attempts=2)  # a death of its own counts
    assert (own.status, own.attempts, own.error) == ("excluded", 2, "worker died: killed")
    with pytest.raises(ValueError, match="^a 'diverged' failure is the architecture's fault: it always counts$"):
        runs.record_failure(store, b.id, Failure("diverged", "loss became nan"), max_attempts=2, counted=False)
    store.close()


# --- a step the controller gets nothing from -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ppo", "evolution", "random"])
def test_an_empty_batch_changes_no_controller(name, tiny_space):
    controller = make_controller(name, tiny_space, 0)
    controller.update(0, [p.tokens for p in controller.propose(0, 2)], [0.5, 0.25])
    before = controller.state_bytes()
    stats = controller.update(1, [], [])
    assert {k: stats[k] for k in ("n", "mean_reward", "max_reward")} == {
        "n": 0, "mean_reward": None, "max_reward": None}
    assert controller.state_bytes() == before


# --- what users see ----------------------------------------------------------------------------------------------

@pytest.fixture
def run_with_exclusions(tmp_path, tiny_space):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    _, (a, b, c) = stored_step(store, tiny_space, "flaky", [SMALL, LARGE, MIDDLE], trials=4)
    runs.mark_started(store, [a.id, b.id, c.id], 3)
    done(store, a)
    for attempt in range(3):
        runs.record_failure(store, b.id, worker_died(f"killed ({attempt + 1})"), max_attempts=3)
        runs.record_failure(store, c.id, Failure("farm-job-failed", f"farm job {attempt + 5} failed: gave up"),
                            max_attempts=3)
        if attempt < 2:
            runs.mark_started(store, [b.id, c.id], 3)
    store.close()
    return url


def test_status_list_and_the_live_line_show_excluded_children_and_why(run_with_exclusions):
    status = CliRunner().invoke(main, ["search", "status", "flaky", "--db", run_with_exclusions])
    assert status.exit_code == 0, status.output
    assert status.output.splitlines() == [
        "search 'flaky': running, 1 done, 0 failed, 2 excluded, 0 pending of 4 (random controller, reward "
        "mnas-soft, accuracy from label, device local)",
        "excluded (infrastructure failures, not learnt from): worker-died 1 (last: worker died: killed (3)); "
        "farm-job-failed 1 (last: farm job 7 failed: gave up)",
        "best: trial #0, reward 0.5249, top-1 50.00%, 0.250 ms (predicted), 0.09 M MACs, 1,898 params",
        f"      {SMALL}",
    ]
    listed = CliRunner().invoke(main, ["search", "list", "--db", run_with_exclusions])
    assert listed.output.splitlines()[2].split()[-2:] == ["3/4", "0.5249"]
    store = open_store(run_with_exclusions)
    trial = runs.trial_dict(runs.get_trial(store, "flaky", 0))
    excluded = runs.trial_dict(runs.all_trials(store, runs.get_run(store, "flaky").id)[1])
    store.close()
    assert display.trial_outcome(excluded) == "EXCLUDED after 3 attempts (not learnt from): worker died: killed (3)"
    assert display.event_line(display.TrialEvent(excluded, 2, 4, trial, 5.0, 5.0)) == (
        "[2/4] #1 EXCLUDED after 3 attempts (not learnt from): worker died: killed (3) | best #0 reward 0.5249 "
        "(top-1 50.00%, 0.250 ms) | 5s elapsed, ETA 5s")


def test_the_report_counts_excluded_children_and_names_their_reasons(run_with_exclusions, tmp_path):
    import matplotlib.pyplot as plt

    from search import figures
    from search.report import load_run, write_report

    store = open_store(run_with_exclusions)
    report = write_report(store, "flaky", tmp_path / "report")
    page = report.index.read_text()
    assert "<th>children</th><td>1 done, 0 failed, 2 excluded, 0 pending of 4</td>" in page
    assert ("<th>excluded children (not learnt from)</th><td>worker-died 1 (last: worker died: killed (3)); "
            "farm-job-failed 1 (last: farm job 7 failed: gave up)</td>") in page
    fig = figures.pareto([load_run(store, "flaky")])
    assert fig.axes[0].get_title() == "Accuracy against latency (2 excluded, not shown)"
    plt.close(fig)
    store.close()


def test_max_attempts_is_checked_and_kept_on_resume(sqlite_url):  # noqa: F811
    with pytest.raises(ValueError, match=r"^max_attempts must be an int >= 1, got 0$"):
        config("zero", max_attempts=0).validate()
    bad = CliRunner().invoke(main, ["search", "--db", sqlite_url, "--max-attempts", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--max-attempts': 0 is not in the range x>=1." in bad.output
    store = open_store(sqlite_url)
    runs.create_or_resume(store, config("kept"), {"input_shape": [32, 32, 1], "classes": 10})
    with pytest.raises(ValueError, match=r"Differences \(stored -> given\): max_attempts: 3 -> 5$"):
        runs.check_resumable(store, config("kept", max_attempts=5))
    assert runs.run_config(runs.get_run(store, "kept")).max_attempts == 3
    store.close()
