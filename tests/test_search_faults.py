"""Infrastructure failures caused for real during a search: what the trials table keeps and what the controller got.

Each test breaks one thing the way it breaks in use: a worker process of the pool killed with SIGKILL
(and then the search process itself, mid-retry), a child that kills every worker that trains it, a Ray
task's worker process killed (and then its retry's), an emulated phone
that drops every benchmark so its farm jobs use up their retries, a farm whose only worker exits after one
job of a step, and the exporter crashing during conversion. Children are the two-block ``lut-test`` space
trained for one epoch on 64 demo images
(the Ray test uses the default space, which Ray's worker processes know without the tests' registration).
What the controller's update received is read from ``controller_stats``, where the search stores the
trial numbers it passed to the update (``trials``) and those it left out (``excluded``).
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from akd_tf.errors import WaitTimedOut
from akd_tf.space import get_space
from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from devicefarm.emulator import EmulatedPhone
from devicefarm.phones import register_phone
from devicefarm.runner import PhoneLimits
from devicefarm.worker import FarmWorker, WorkerOptions
from latency_db.schema import Job, Measurement, SearchRun
from latency_db.store import open_store
from run_fixtures import TINY_TARGET, build_tiny_lut, tiny_search
from search import runs
from search.config import ProxySettings, SearchConfig
from search.controller import make_controller
from search.failures import EveryChildExcluded
from search.loop import run_search

TESTS = Path(__file__).parent
BROKEN_POOL = ("worker died: A process in the process pool was terminated abruptly while the future was running "
               "or pending.")
INTERRUPTED = {"kind": "interrupted", "reason": "the search stopped during this attempt"}

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the processes to kill in /proc")


def config(name: str, **overrides) -> SearchConfig:
    return tiny_search(name, **{"trials": 2, **overrides})


@pytest.fixture
def lut_url(sqlite_url, tiny_space):  # noqa: F811
    return build_tiny_lut(sqlite_url)


def trials_of(store, name):
    return runs.all_trials(store, runs.get_run(store, name).id)


def controller_stats(store, name):
    with store.session() as session:
        return session.scalar(select(SearchRun).where(SearchRun.name == name)).controller_stats


def processes() -> dict[int, tuple[int, str]]:
    """Every process now: pid -> (parent pid, command line)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        found[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline.strip())
    return found


def descendants(pid: int) -> dict[int, str]:
    """The processes descended from ``pid`` (children, their children, ...): pid -> command line. Only these
    are ever killed here: other processes on the machine (another Ray, say) are none of a test's business."""
    table = processes()
    found, frontier = {}, {pid}
    while frontier:
        frontier = {p for p, (parent, _) in table.items() if parent in frontier and p not in found}
        found.update({p: table[p][1] for p in frontier})
    return found


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what}")


# --- a killed worker of the process pool, then the search killed mid-retry ------------------------------------

SEARCH_MAIN = """
import os
import signal
import sys
import time
# Ctrl-C raises KeyboardInterrupt here even when this test runs under a shell that started it in the background:
# such a shell ignores SIGINT for its jobs, the search inherits that, and Python then leaves SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from db_fixtures import tiny_space
tiny_space()  # in the search and, imported as __mp_main__, in each spawned worker of its pool

if __name__ == "__mp_main__" and os.environ.get("KILLS_ITS_WORKER"):
    # In the workers only: child number KILLS_ITS_WORKER kills the process training it (as a network too big for
    # the machine's memory gets its worker killed), once the other child has started beside it (MARKERS).
    import search.evaluate

    train_child, markers = search.evaluate.train_child, os.environ["MARKERS"]

    def killing_train_child(job, **options):
        if job["number"] != int(os.environ["KILLS_ITS_WORKER"]):
            open(os.path.join(markers, f"started-{{job['number']}}"), "w").close()
            return train_child(job, **options)
        deadline = time.monotonic() + 120
        while not any(name.startswith("started-") for name in os.listdir(markers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)

    search.evaluate.train_child = killing_train_child  # what the pool's pickled reference finds here

if __name__ == "__main__":
    from akd_tf.cli import main
    main(sys.argv[1:])
"""


def search_command(tmp_path, url: str, name: str, *more: str) -> list[str]:
    """``akd-tf search`` of two tiny children in one step, from a script file that registers ``lut-test``
    (``more``: options that override these)."""
    script = tmp_path / "search_main.py"
    script.write_text(SEARCH_MAIN.format(tests=str(TESTS)))
    return [sys.executable, str(script), "search", "--db", url, "--name", name, "--space", "lut-test",
            "--controller", "random", "--reward-source", "label", "--target-ms", "0.05", "--trials", "2",
            "--batch-size", "2", "--val-size", "50", "--proxy-epochs", "1", "--proxy-train-size", "64",
            "--proxy-batch-size", "32", "--max-attempts", "3", *more]


def attempts(store, name: str) -> list[tuple[int, int]]:
    """(attempts started, attempt failures recorded) of each trial of run ``name``, by number."""
    if runs.find_run(store, name) is None:
        return []
    return [(t.attempts, len(t.attempt_failures or [])) for t in trials_of(store, name)]


def pool_workers(pid):
    return [p for p, (parent, cmdline) in processes().items() if parent == pid and "spawn_main" in cmdline]


SHARED_DEATH = {"attempt": 1, "kind": "worker-died", "reason": BROKEN_POOL, "counted": False}


def test_a_killed_pool_worker_costs_its_children_no_attempt_and_a_search_killed_mid_retry_resumes(
        lut_url, tiny_space, tmp_path):
    """A worker killed from outside while both children train: no child is to blame, so neither is charged an
    attempt, and each is tried again alone. The search itself is then killed during the first lone retry, and
    resumes: that retry is recorded as interrupted (it counts), and both children end done."""
    args = search_command(tmp_path, lut_url, "pool")
    store = open_store(lut_url)
    log = tmp_path / "search.log"  # a file, not a pipe: no orphaned worker can hold our end open
    with log.open("w") as out:
        search = subprocess.Popen([*args, "--workers", "2"], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: attempts(store, "pool") == [(1, 0), (1, 0)], 300, "the first attempts to start")
        os.kill(wait_for(lambda: pool_workers(search.pid), 120, "a pool worker")[0], signal.SIGKILL)
        # Both children of the broken pool fail uncounted; the first lone retry starts in a fresh pool, the other
        # child waiting. Now the search itself dies, mid-retry, and its processes with it.
        retrying = wait_for(lambda: attempts(store, "pool") in ([(1, 1), (0, 1)], [(0, 1), (1, 1)]) and
                            attempts(store, "pool"), 120, "a lone retry to start")
        wait_for(lambda: pool_workers(search.pid), 120, "the fresh pool's worker")
        assert attempts(store, "pool") == retrying  # one at a time: the other has not started beside it
    finally:
        leftover = [p for p, (parent, _) in processes().items() if parent == search.pid]  # workers, resource tracker
        search.kill()
        search.wait()
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    output = log.read_text()
    for number in (0, 1):
        assert (f"child #{number}: failed with 1 other child (worker-died: {BROKEN_POOL}); no attempt counted, "
                f"trying it again alone") in output

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = trials_of(store, "pool")
    proposed = [p.tokens for p in make_controller("random", tiny_space, 0).propose(0, 2)]
    assert [(t.number, tuple(t.tokens)) for t in trials] == list(enumerate(proposed))  # the same two children
    interrupted = retrying.index((1, 1))
    for trial in trials:
        assert (trial.status, trial.error) == ("done", None) and trial.reward is not None
        if trial.number == interrupted:
            assert (trial.attempts, trial.attempt_failures) == (2, [SHARED_DEATH, {"attempt": 1, **INTERRUPTED}])
        else:
            assert (trial.attempts, trial.attempt_failures) == (1, [SHARED_DEATH])
    [stats] = controller_stats(store, "pool")  # learnt from once, from both children
    assert (stats["step"], stats["n"], stats["trials"], stats["excluded"]) == (0, 2, [0, 1], [])
    assert stats["mean_reward"] == pytest.approx(sum(t.reward for t in trials) / 2)
    store.close()


def test_a_child_that_keeps_killing_its_worker_is_excluded_alone_and_its_sibling_is_charged_nothing(
        lut_url, tiny_space, tmp_path):
    """Child #1 kills the worker that trains it, once child #0 has started beside it. The first death is shared
    (no attempt for either); from then on each trains alone, so #1's deaths are its own: it is excluded after
    --max-attempts of them, while #0 is done on its first counted attempt and the controller learns from it."""
    markers = tmp_path / "markers"
    markers.mkdir()
    result = subprocess.run([*search_command(tmp_path, lut_url, "culprit"), "--workers", "2"], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "KILLS_ITS_WORKER": "1",
                                                         "MARKERS": str(markers)})
    assert result.returncode == 0, result.stdout + result.stderr
    store = open_store(lut_url)
    healthy, culprit = trials_of(store, "culprit")
    # #0 either finished before the pool noticed the death (Python's pool may notice a worker's death only when
    # another job ends) or was failed with it, uncounted, and done alone: either way on its first counted attempt.
    assert (healthy.status, healthy.attempts) == ("done", 1)
    assert healthy.attempt_failures in (None, [SHARED_DEATH])
    assert healthy.reward is not None
    assert (culprit.status, culprit.attempts, culprit.reward) == ("excluded", 3, None)
    assert culprit.attempt_failures == [SHARED_DEATH, *({"attempt": n, "kind": "worker-died", "reason": BROKEN_POOL}
                                                        for n in (1, 2, 3))]
    for n in (1, 2):
        assert (f"child #1: attempt {n} of 3 failed (worker-died: {BROKEN_POOL}); trying it again alone"
                in result.stdout + result.stderr)
    [stats] = controller_stats(store, "culprit")
    assert (stats["n"], stats["trials"], stats["excluded"]) == (1, [0], [1])
    store.close()


def test_a_search_paused_with_ctrl_c_spends_no_attempt(lut_url, tmp_path):
    store = open_store(lut_url)
    log = tmp_path / "search.log"
    with log.open("w") as out:
        # 1000 epochs: the first child still trains when the pause comes (with one, both could finish the
        # search between the poll that sees their attempts and the signal)
        search = subprocess.Popen(search_command(tmp_path, lut_url, "paused", "--proxy-epochs", "1000"), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: attempts(store, "paused") == [(1, 0), (1, 0)], 300, "the first attempts to start")
        # Ctrl-C while the first child is built or trains (one that lands in TensorFlow's lazy imports during the
        # build can come out as a SystemError, or be printed and dropped: still a pause, see the next tests)
        search.send_signal(signal.SIGINT)
        returncode = search.wait(timeout=120)
        assert returncode == 130, f"exit status {returncode}:\n{log.read_text()}"
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    output = log.read_text()
    assert ("search 'paused' paused (Ctrl-C): every finished child is stored, and the children it stopped count no "
            "attempt; resume with: akd-tf search --name paused --db URL") in output
    assert "TensorFlow ran in this process" not in output  # the command started none before the search set threads
    pending = [t for t in trials_of(store, "paused") if t.status == "pending"]
    assert pending, output  # the pause came before both children were trained
    assert [(t.attempts, t.attempt_failures) for t in pending] == [(0, None)] * len(pending)
    store.close()


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal (a test runner may ignore it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def press_ctrl_c():
    """A real SIGINT to this process; its handler raises KeyboardInterrupt here, before this returns."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # not reached: the handler runs at the next bytecode
    raise AssertionError("SIGINT did not interrupt")


def test_a_ctrl_c_that_library_code_turns_into_another_error_is_still_a_pause(lut_url, ctrl_c_raises, monkeypatch):
    import akd_tf.distill

    store = open_store(lut_url)
    real_prepare_proxy = akd_tf.distill.prepare_proxy

    def ctrl_c_during_the_build(*args, **kwargs):
        # What CPython made of a Ctrl-C that landed in one of TensorFlow's lazy imports while Keras built a child
        try:
            press_ctrl_c()
        except KeyboardInterrupt as exc:
            raise SystemError("__import__ returned a result with an exception set") from exc

    monkeypatch.setattr(akd_tf.distill, "prepare_proxy", ctrl_c_during_the_build)
    with pytest.raises(KeyboardInterrupt) as paused:
        run_search(store, config("mangled"))
    assert isinstance(paused.value.__cause__, SystemError)  # where the Ctrl-C landed stays in the traceback
    assert [(t.status, t.attempts, t.attempt_failures) for t in trials_of(store, "mangled")] == [
        ("pending", 0, None), ("pending", 0, None)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the search's handler is gone

    # The same error with no Ctrl-C is a crash: it is raised as it is, and the attempt stays counted
    def crash_during_the_build(*args, **kwargs):
        raise SystemError("__import__ returned a result with an exception set")

    monkeypatch.setattr(akd_tf.distill, "prepare_proxy", crash_during_the_build)
    with pytest.raises(SystemError):
        run_search(store, config("mangled"))
    assert [t.attempts for t in trials_of(store, "mangled")] == [1, 1]

    monkeypatch.setattr(akd_tf.distill, "prepare_proxy", real_prepare_proxy)
    summary = run_search(store, config("mangled"))  # resumed: the crash's attempts are recorded, the pause's not
    assert summary["trials"] == {"pending": 0, "done": 2, "failed": 0, "excluded": 0}
    assert [(t.attempts, t.attempt_failures) for t in trials_of(store, "mangled")] == [
        (2, [{"attempt": 1, **INTERRUPTED}])] * 2
    store.close()


def press_ctrl_c_and_swallow_it():
    """A real SIGINT whose ``KeyboardInterrupt`` the code it lands in prints and drops, as TensorFlow's C++ nest
    utilities did in CI with one raised in a lazy import under them."""
    try:
        press_ctrl_c()
    except KeyboardInterrupt:
        print("SystemError: <built-in function __import__> returned a result with an exception set")


@pytest.mark.parametrize("where", ["build", "after-training"])
def test_a_ctrl_c_that_library_code_swallows_is_still_a_pause(lut_url, ctrl_c_raises, monkeypatch, where):
    """Swallowed during a child's build, the pause comes after the child's first step (the search's training
    callback); swallowed after its training, before its result is stored (the loop's check). Either way the
    child's attempt is uncounted and nothing it computed is stored."""
    import akd_tf.distill

    store = open_store(lut_url)
    real_prepare_proxy, real_fit_prepared = akd_tf.distill.prepare_proxy, akd_tf.distill.fit_prepared
    built, trained = [], []  # the children whose build swallowed a Ctrl-C; the epochs of each fit that returned

    def swallowed_during_the_build(*args, **kwargs):
        if where == "build" and not built:  # the first child's, in this thread (the next one's, in another)
            built.append(True)
            press_ctrl_c_and_swallow_it()
        return real_prepare_proxy(*args, **kwargs)

    def swallowed_after_training(prepared, callbacks=()):
        result = real_fit_prepared(prepared, callbacks=callbacks)
        trained.append(len(result.history["loss"]))
        if where == "after-training":
            press_ctrl_c_and_swallow_it()
        return result

    monkeypatch.setattr(akd_tf.distill, "prepare_proxy", swallowed_during_the_build)
    monkeypatch.setattr(akd_tf.distill, "fit_prepared", swallowed_after_training)
    name = f"swallowed-{where}"
    with pytest.raises(KeyboardInterrupt, match="swallowed"):
        run_search(store, config(name))
    assert [(t.status, t.attempts, t.attempt_failures, t.accuracy) for t in trials_of(store, name)] == [
        ("pending", 0, None, None), ("pending", 0, None, None)]
    assert trained == ([] if where == "build" else [1])  # after the build, the callback stopped its only epoch
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    monkeypatch.setattr(akd_tf.distill, "prepare_proxy", real_prepare_proxy)
    monkeypatch.setattr(akd_tf.distill, "fit_prepared", real_fit_prepared)
    summary = run_search(store, config(name))  # resumed: both children trained once, no attempt lost
    assert summary["trials"] == {"pending": 0, "done": 2, "failed": 0, "excluded": 0}
    assert [(t.attempts, t.attempt_failures) for t in trials_of(store, name)] == [(1, None)] * 2
    store.close()


def test_a_ctrl_c_swallowed_while_children_are_in_flight_stops_them_all(lut_url, ctrl_c_raises, monkeypatch):
    """With two children in flight (random search keeps every worker busy), a Ctrl-C swallowed in the search's
    process after they started pauses when the first comes back: neither is stored, neither attempt counts."""
    from search.executors import SequentialExecutor
    from search.latency import LatencySource

    class TwoInFlight(SequentialExecutor):
        """Trains in this process, one child when waited for, but lets the search keep two in flight (so it
        takes the path of a 2-worker pool; spawned workers would not know the tests' ``lut-test`` space)."""
        capacity = 2

    store = open_store(lut_url)
    real_latencies = LatencySource.latencies
    started = []

    def swallowed_while_pricing(self, archs):
        found = real_latencies(self, archs)
        started.append(attempts(store, "in-flight"))
        press_ctrl_c_and_swallow_it()
        return found

    monkeypatch.setattr(LatencySource, "latencies", swallowed_while_pricing)
    with pytest.raises(KeyboardInterrupt, match="swallowed"):
        run_search(store, config("in-flight"), executor=TwoInFlight())
    assert started == [[(1, 0), (1, 0)]]  # both started before the Ctrl-C
    assert [(t.status, t.attempts, t.attempt_failures, t.accuracy) for t in trials_of(store, "in-flight")] == [
        ("pending", 0, None, None), ("pending", 0, None, None)]
    store.close()


def test_a_ctrl_c_while_a_worker_s_children_are_priced_counts_no_attempt(lut_url, ctrl_c_raises, monkeypatch):
    from search.executors import ProcessExecutor
    from search.latency import LatencySource

    store = open_store(lut_url)
    real_latencies = LatencySource.latencies
    counted_when_pressed = []

    def ctrl_c_after_pricing(self, archs):
        found = real_latencies(self, archs)
        counted_when_pressed.extend(attempts(store, "pricing"))  # the attempts started, nothing submitted yet
        press_ctrl_c()
        return found

    monkeypatch.setattr(LatencySource, "latencies", ctrl_c_after_pricing)
    executor = ProcessExecutor(2)  # random search on 2 workers: children start one by one as workers free
    try:
        with pytest.raises(KeyboardInterrupt):
            run_search(store, config("pricing"), executor=executor)
    finally:
        executor.close()
    assert counted_when_pressed == [(1, 0), (1, 0)]
    assert [(t.status, t.attempts, t.attempt_failures, t.latency_ms) for t in trials_of(store, "pricing")] == [
        ("pending", 0, None, None), ("pending", 0, None, None)]
    store.close()


def test_a_ctrl_c_while_a_reused_child_is_priced_anew_counts_no_attempt(
        lut_url, ctrl_c_raises, monkeypatch, tiny_space):
    """After --allow-latency-change, a child whose network was evaluated under the earlier latency source takes
    that evaluation's accuracy and is priced by the current source, as an attempt. A real Ctrl-C during that
    pricing leaves it pending with no attempt counted and nothing reused; resumed, it reuses the evaluation with
    the current source's price."""
    from dataclasses import replace

    from run_fixtures import first_child_priced_by_an_earlier_source
    from search.latency import LatencySource

    store = open_store(lut_url)
    moved = config("repriced", trials=1, batch_size=1)
    _, _, original = first_child_priced_by_an_earlier_source(store, moved)
    run = runs.get_run(store, "repriced")
    current = LatencySource(store, "local", TINY_TARGET, measure=False)
    run_search(store, moved, allow_latency_change=True)  # trained, priced 0.04 by the earlier source
    runs.add_trials(store, run.id, 1, [runs.NewTrial(original.tokens)])  # the same network again

    real_latencies, priced = LatencySource.latencies, []

    def ctrl_c_while_pricing(self, archs):
        priced.append((len(archs), attempts(store, "repriced")))
        press_ctrl_c()
        return real_latencies(self, archs)

    monkeypatch.setattr(LatencySource, "latencies", ctrl_c_while_pricing)
    with pytest.raises(KeyboardInterrupt):
        run_search(store, replace(moved, trials=2))
    assert priced == [(1, [(1, 0), (1, 0)])]  # the reused child's attempt had started
    original, again = trials_of(store, "repriced")
    assert (again.status, again.attempts, again.attempt_failures, again.latency_ms, again.reused_from) == (
        "pending", 0, None, None, None)

    monkeypatch.setattr(LatencySource, "latencies", real_latencies)
    run_search(store, replace(moved, trials=2))
    original, again = trials_of(store, "repriced")
    [now] = current.latencies([tiny_space.parse(original.arch)])
    assert (again.status, again.attempts, again.reused_from) == ("done", 1, original.id)
    assert again.accuracy == original.accuracy
    assert (again.latency_ms, original.latency_ms) == (now.latency_ms, 0.04)
    store.close()


# --- a Ray task that dies -------------------------------------------------------------------------------------

def test_a_child_whose_ray_task_dies_is_retried_then_excluded_and_ppo_learns_from_the_other_alone(sqlite_url, tiny_space):  # noqa: F811,E501
    """A Ray task's worker killed while it trains a child, then the worker of that child's retry: each death is
    the child's own (a Ray task has its worker to itself), so it counts; after --max-attempts 2 the child is
    excluded, its sibling is done on its first attempt, and the controller learns from the sibling alone. The
    killer tells the workers apart by their process titles, which name the child (``ray::train child #N of
    on-ray``)."""
    pytest.importorskip("ray")
    from search.executors import make_executor

    store = open_store(sqlite_url)
    killed, before = [], set(descendants(os.getpid()))  # whatever an earlier Ray of this process left is not ours

    def training(number=None):  # this test's Ray workers training a child (of child ``number``): pid -> number
        titles = {p: re.fullmatch(r"ray::train child #(\d+) of on-ray", cmdline.strip())
                  for p, cmdline in descendants(os.getpid()).items() if p not in before}
        return {p: int(m[1]) for p, m in titles.items()
                if m and p not in killed and (number is None or int(m[1]) == number)}

    def kill_an_attempt_and_its_retry():
        try:
            pid, number = next(iter(wait_for(training, 600, "a Ray task training a child").items()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            [pid] = wait_for(lambda: training(number), 600, f"child #{number}'s retry")
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except AssertionError as exc:
            killed.append(exc)

    settings = SearchConfig(name="on-ray", controller="ppo", reward_source="label", target_ms=1.0, trials=2,
                            batch_size=2, measure=True, max_attempts=2, data={"source": "demo", "val_size": 50},
                            proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
    executor = make_executor("ray", 2)
    killer = threading.Thread(target=kill_an_attempt_and_its_retry, daemon=True)
    killer.start()
    try:
        summary = run_search(store, settings, executor=executor)
    finally:
        executor.close()
        killer.join(timeout=60)
    assert len(killed) == 2 and all(isinstance(pid, int) for pid in killed), killed
    trials = trials_of(store, "on-ray")
    assert [t.status for t in trials].count("excluded") == 1, [runs.trial_dict(t) for t in trials]
    [dead] = [t for t in trials if t.status == "excluded"]
    [alive] = [t for t in trials if t.status != "excluded"]
    assert (dead.attempts, dead.reward) == (2, None)
    assert [(f["attempt"], f["kind"]) for f in dead.attempt_failures] == [(1, "ray-task-died"), (2, "ray-task-died")]
    assert dead.error == dead.attempt_failures[-1]["reason"] and dead.error.startswith("WorkerCrashedError: ")
    assert alive.status == "done" and alive.attempts == 1 and alive.attempt_failures is None
    assert summary["trials"] == {"pending": 0, "done": 1, "failed": 0, "excluded": 1}
    [stats] = controller_stats(store, "on-ray")
    assert (stats["n"], stats["trials"], stats["excluded"], stats["mean_reward"]) == (
        1, [alive.number], [dead.number], alive.reward)
    # The stored state is exactly a fresh controller's after an update on the surviving child alone.
    alone = make_controller("ppo", get_space("mnasnet"), 0)
    alone.update(0, [alive.tokens], [alive.reward])
    with store.session() as session:
        assert session.scalar(select(SearchRun.controller_state)) == alone.state_bytes()
    store.close()


# --- an emulated phone that drops every benchmark ----------------------------------------------------------------

LIMITS = PhoneLimits(cool_to_c=90.0, cool_timeout_s=0.0, poll_s=0.1)  # drops, not heat, fail its jobs


DROPPED = (r"gave up after 3 attempts: 127\.0\.0\.1:\d+: `taskset 80 \S+/benchmark_model --graph=\S+\.tflite .*` "
           r"failed after 3 attempts: \[Errno 104\] Connection reset by peer")  # a job: 3 phone runs, each 3 tries


@pytest.fixture
def phone(tmp_path, adb_key):
    """An emulated Pixel 4 registered as ``px`` in a fresh database: (store, phone)."""
    store = open_store(f"sqlite:///{tmp_path / 'farm.db'}")
    emulated = EmulatedPhone(profile="pixel4", state_dir=tmp_path / "phone").start()
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF placeholder for the emulated phone's benchmark_model\n")
    register_phone(store, emulated.address, name="px", benchmark_binary=binary, limits=LIMITS)
    yield store, emulated
    emulated.stop()
    store.close()


@pytest.fixture
def dropping_phone(phone):
    """The phone dropping every benchmark, served by a farm worker thread."""
    store, emulated = phone
    emulated.faults.drop_during_benchmark = True
    worker = FarmWorker(store, ["px"], worker_id="w", options=WorkerOptions(
        lease_seconds=5.0, poll_s=0.05, recheck_offline_s=0.2, limits=LIMITS, retry_backoff_s=0.05))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield store, emulated
    worker.stop.set()
    thread.join(timeout=30)


def test_a_farm_no_worker_serves_stops_the_search_without_spending_an_attempt(phone, tiny_space):
    store, _ = phone
    with pytest.raises(WaitTimedOut, match=r"^2 of 2 job\(s\) still pending after 1 s .*are workers running\?$"):
        run_search(store, config("unserved", device="px", measure=True), wait_timeout_s=1)
    assert [(t.status, t.attempts, t.attempt_failures) for t in trials_of(store, "unserved")] == [
        ("pending", 0, None)] * 2


def test_children_whose_farm_jobs_give_up_on_a_dropping_phone_are_excluded_and_evolution_never_sees_them(
        dropping_phone, tiny_space):
    store, phone = dropping_phone
    settings = config("farm", device="px", measure=True, controller="evolution", trials=4, max_attempts=2)
    with pytest.raises(EveryChildExcluded, match=r"^search 'farm' stopped: every child of step 0 was excluded, .*"
                                                 r"\(farm-job-failed 2 \(last: latency: farm job \d+ failed: gave up "
                                                 r"after 3 attempts: .*resume with step 1"):
        run_search(store, settings, wait_timeout_s=300)
    with store.session() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [(job.state, job.attempts) for job in jobs] == [("failed", 3), ("failed", 3)]  # each asked twice
    excluded = trials_of(store, "farm")
    for trial, job in zip(excluded, jobs):
        reason = f"latency: farm job {job.id} failed: {job.error}"
        assert re.fullmatch(DROPPED, job.error), job.error
        assert (trial.status, trial.attempts, trial.reward, trial.latency_ms, trial.error) == (
            "excluded", 2, None, None, reason)
        assert trial.attempt_failures == [{"attempt": n, "kind": "farm-job-failed", "reason": reason} for n in (1, 2)]
    [stats] = controller_stats(store, "farm")
    assert (stats["n"], stats["trials"], stats["excluded"], stats["population"]) == (0, [], [0, 1], 0)

    phone.faults.drop_during_benchmark = False  # the phone is fixed: the same command resumes with step 1
    summary = run_search(store, settings, wait_timeout_s=300)
    trials = trials_of(store, "farm")
    assert [(t.number, t.status) for t in trials] == [(0, "excluded"), (1, "excluded"), (2, "done"), (3, "done")]
    assert all(t.latency_source == "measured" and t.attempts == 1 for t in trials[2:])
    assert summary["trials"] == {"pending": 0, "done": 2, "failed": 0, "excluded": 2}
    assert summary["excluded"] == [{"kind": "farm-job-failed", "count": 2, "reason": trials[1].error}]
    assert [(s["step"], s["trials"], s["excluded"]) for s in controller_stats(store, "farm")] == [
        (0, [], [0, 1]), (1, [2, 3], [])]
    with store.session() as session:
        population = json.loads(session.scalar(select(SearchRun.controller_state)))["population"]
    assert sorted(map(tuple, (tokens for tokens, _ in population))) == sorted(tuple(t.tokens) for t in trials[2:])
    assert sorted(reward for _, reward in population) == sorted(t.reward for t in trials[2:])


def test_a_child_trains_once_its_own_farm_measurement_is_back_and_a_farm_that_stalls_after_it_loses_nothing(
        phone, tiny_space):
    """A farm worker that measures one job and exits: the child it measured trains at once, without waiting for
    the step's other measurement; then, with no worker left, the search stops after ``--wait-timeout``, the
    trained child stored and the other pending with no attempt counted. Resumed with a worker, the other is
    measured and trained, and nothing is measured or trained twice."""
    store, _ = phone
    options = WorkerOptions(lease_seconds=5.0, poll_s=0.05, recheck_offline_s=0.2, limits=LIMITS,
                            retry_backoff_s=0.05, max_jobs=1)
    worker = threading.Thread(target=FarmWorker(store, ["px"], worker_id="one-job", options=options).run,
                              daemon=True)
    worker.start()
    settings = config("stalled", device="px", measure=True, controller="evolution")
    with pytest.raises(WaitTimedOut, match=r"^1 of 1 job\(s\) still pending after 30 s "):
        run_search(store, settings, wait_timeout_s=30)  # also the longest wait for the first measurement
    worker.join(timeout=30)
    with store.session() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert sorted(job.state for job in jobs) == ["done", "queued"]
        [measured] = [job for job in jobs if job.state == "done"]
        measurement_id = session.scalar(select(Measurement.id).where(Measurement.run_key == measured.run_key))
    trained, waiting = sorted(trials_of(store, "stalled"), key=lambda t: t.status)
    assert (trained.status, trained.attempts, trained.latency_source, trained.measurement_id) == (
        "done", 1, "measured", measurement_id)
    assert trained.accuracy is not None and trained.train_seconds > 0
    assert (waiting.status, waiting.attempts, waiting.latency_ms, waiting.accuracy) == ("pending", 0, None, None)
    assert controller_stats(store, "stalled") == []  # the step has not ended: no update yet

    served = threading.Thread(target=FarmWorker(store, ["px"], worker_id="again", options=options).run, daemon=True)
    served.start()
    summary = run_search(store, settings, wait_timeout_s=300)
    served.join(timeout=30)
    assert summary["trials"] == {"pending": 0, "done": 2, "failed": 0, "excluded": 0}
    with store.session() as session:
        assert [job.state for job in session.scalars(select(Job)).all()] == ["done", "done"]  # no third job
    again = {t.id: t for t in trials_of(store, "stalled")}
    assert (again[trained.id].attempts, again[trained.id].train_seconds) == (1, trained.train_seconds)
    assert (again[waiting.id].status, again[waiting.id].attempts, again[waiting.id].latency_source) == (
        "done", 1, "measured")


# --- a conversion that crashes -----------------------------------------------------------------------------------

CONVERTER_CRASH = "<unknown>:0: error: failed to legalize operation 'tfl.depthwise_conv_2d'"


def test_a_conversion_crash_is_retried_and_a_child_that_keeps_crashing_is_left_out_of_the_ppo_update(
        lut_url, tiny_space, monkeypatch):
    """The exporter is the real one, crashing as the TFLite converter does (its own error type) where told to:
    a valid architecture cannot make the real converter fail on demand."""
    from tensorflow.lite.python.convert_phase import ConverterError

    import latency_db.measure as measure
    from akd_tf.canonical import canonical_arch

    # what is exported: each child's network, as its canonical form
    first, second = [canonical_arch(tiny_space.from_tokens(p.tokens))
                     for p in make_controller("ppo", tiny_space, 0).propose(0, 2)]
    assert first != second
    real_export, exported = measure.export_untrained, []

    def export(arch, target, out_path, seed):
        exported.append(arch)
        if arch == second or exported.count(first) == 1:
            raise ConverterError(CONVERTER_CRASH + "\nsee the MLIR diagnostics above")
        return real_export(arch, target, out_path, seed)

    monkeypatch.setattr(measure, "export_untrained", export)
    store = open_store(lut_url)
    messages = []
    summary = run_search(store, config("convert", controller="ppo", measure=True), say=messages.append)
    assert exported == [first, second, first, second, second]  # three attempts of the second, two of the first
    recovered, crashed = trials_of(store, "convert")
    reason = f"latency: ConverterError: {CONVERTER_CRASH}"
    assert (recovered.status, recovered.attempts, recovered.latency_source, recovered.error) == (
        "done", 2, "measured", None)
    assert recovered.attempt_failures == [{"attempt": 1, "kind": "conversion-failed", "reason": reason}]
    assert (crashed.status, crashed.attempts, crashed.reward, crashed.error) == ("excluded", 3, None, reason)
    assert crashed.attempt_failures == [{"attempt": n, "kind": "conversion-failed", "reason": reason}
                                        for n in (1, 2, 3)]
    assert f"child #1: attempt 2 of 3 failed (conversion-failed: {reason}); trying it again" in messages
    assert f"step 0: 1 of 2 children excluded from learning: conversion-failed 1 (last: {reason})" in messages
    assert summary["status"] == "finished" and summary["best"]["number"] == 0
    [stats] = controller_stats(store, "convert")
    assert (stats["n"], stats["trials"], stats["excluded"], stats["mean_reward"]) == (1, [0], [1], recovered.reward)
    alone = make_controller("ppo", tiny_space, 0)
    alone.update(0, [recovered.tokens], [recovered.reward])
    with store.session() as session:
        assert session.scalar(select(SearchRun.controller_state)) == alone.state_bytes()
    store.close()
