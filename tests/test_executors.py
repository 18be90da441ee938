"""Local executors: where worker processes run, and that a pool started again after a death keeps that.

Pinned workers are real spawned processes; each job reports the process it ran in and the cores that
process may use (``os.sched_getaffinity``), so the test reads the pinning from the kernel, not the code.
"""

import os
import time

import pytest

from search.executors import ProcessExecutor, SequentialExecutor, core_sets, make_executor

CORES = sorted(os.sched_getaffinity(0))


def where_am_i(job: dict) -> dict:
    """A pool job: hold the worker a while (so each job gets a worker of its own), then say where it ran."""
    time.sleep(job["hold_s"])
    if job.get("die"):
        os._exit(1)
    return {"pid": os.getpid(), "cores": sorted(os.sched_getaffinity(0))}


def run_together(executor, jobs):
    return [result for _, result in executor.map_unordered(where_am_i, jobs)]


def test_core_sets_hand_each_worker_its_own_cores_in_order():
    assert core_sets(2, 1, {3, 1}) == [frozenset({1}), frozenset({3})]
    assert core_sets(2, 2, range(5)) == [frozenset({0, 1}), frozenset({2, 3})]
    assert core_sets(1, 3, [4, 0, 2]) == [frozenset({0, 2, 4})]
    with pytest.raises(ValueError) as error:
        core_sets(3, 2, {0, 1, 5})
    assert str(error.value) == ("--cores-per-worker 2 with 3 worker(s) needs 6 cores; this process may run on 3 "
                                "(0, 1, 5). Lower --cores-per-worker or --workers.")
    with pytest.raises(ValueError, match="^cores per worker must be an int >= 1, got 0$"):
        core_sets(1, 0, {0})


def test_pinning_is_asked_for_by_cores_per_worker_and_only_for_local_workers():
    assert isinstance(make_executor("local", 1), SequentialExecutor)
    pinned = make_executor("local", 1, cores_per_worker=1)  # a process of its own, so it can be pinned
    assert isinstance(pinned, ProcessExecutor) and (pinned.workers, pinned.threads_per_child) == (1, 1)
    with pytest.raises(ValueError, match=r"^--cores-per-worker pins local worker processes; with --executor ray"):
        make_executor("ray", 1, cores_per_worker=1)
    with pytest.raises(ValueError, match=rf"^--cores-per-worker {len(CORES) + 1} with 1 worker\(s\) needs "):
        make_executor("local", 1, cores_per_worker=len(CORES) + 1)


@pytest.mark.skipif(len(CORES) < 2, reason="pins two workers to a core each")
def test_pinned_workers_run_on_cores_of_their_own_also_after_a_worker_dies():
    executor = ProcessExecutor(2, cores_per_worker=1)
    try:
        first = run_together(executor, [{"hold_s": 1.0}, {"hold_s": 1.0}])
        assert len({r["pid"] for r in first}) == 2
        assert sorted(r["cores"] for r in first) == [[CORES[0]], [CORES[1]]]

        [died] = run_together(executor, [{"hold_s": 0.0, "die": True}])
        assert (died["status"], died["kind"]) == ("failed", "worker-died")

        again = run_together(executor, [{"hold_s": 1.0}, {"hold_s": 1.0}])  # a fresh pool, the same sets
        assert len({r["pid"] for r in again}) == 2 and not {r["pid"] for r in again} & {r["pid"] for r in first}
        assert sorted(r["cores"] for r in again) == [[CORES[0]], [CORES[1]]]
    finally:
        executor.close()


def test_a_worker_death_says_how_many_other_jobs_it_failed():
    """A death that broke the pool while another job ran says so (``shared_with`` 1), and so does the other,
    which the broken pool fails (or which finished, when the pool noticed the death late); a job that dies
    alone in the pool says it died alone (``shared_with`` 0: the death was its own)."""
    executor = ProcessExecutor(2)
    try:
        results = {job["n"]: result for job, result in executor.map_unordered(
            where_am_i, [{"hold_s": 0.5, "die": True, "n": 0}, {"hold_s": 3.0, "n": 1}])}
        assert (results[0]["status"], results[0]["kind"], results[0]["shared_with"]) == ("failed", "worker-died", 1)
        assert "pid" in results[1] or (results[1]["kind"], results[1]["shared_with"]) == ("worker-died", 1)
        [alone] = run_together(executor, [{"hold_s": 0.0, "die": True}])  # a fresh pool, this job alone in it
        assert (alone["status"], alone["kind"], alone["shared_with"]) == ("failed", "worker-died", 0)
        assert len(run_together(executor, [{"hold_s": 0.0}, {"hold_s": 0.0}])) == 2  # and the next pool works
    finally:
        executor.close()


def test_waiting_with_a_timeout_returns_none_until_a_job_finished_and_the_sequential_executor_runs_one_anyway():
    executor = ProcessExecutor(1)
    try:
        handle = executor.submit(where_am_i, {"hold_s": 2.0})
        assert executor.wait_one([handle], timeout=0.1) is None
        finished, result = executor.wait_one([handle], timeout=60)
        assert finished is handle and result["pid"] != os.getpid()
    finally:
        executor.close()
    sequential = SequentialExecutor()
    handle = sequential.submit(where_am_i, {"hold_s": 0.3})
    assert sequential.wait_one([handle], timeout=0.0) == (handle, {"pid": os.getpid(), "cores": CORES})


def test_unpinned_workers_run_wherever_this_process_may():
    executor = ProcessExecutor(2)
    try:
        assert [r["cores"] for r in run_together(executor, [{"hold_s": 0.0}])] == [CORES]
    finally:
        executor.close()


def test_unpinned_workers_share_the_cores_this_process_may_run_on():
    # Not the machine's: a search started under taskset (or in a container's cpuset) has fewer.
    assert ProcessExecutor(1).threads_per_child == len(CORES)
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        assert (ProcessExecutor(1).threads_per_child, ProcessExecutor(2).threads_per_child) == (1, 1)
    finally:
        os.sched_setaffinity(0, saved)


def test_one_worker_shortens_the_gil_switch_interval_only_while_a_job_runs_beside_a_preparation():
    """The preparing thread holds the GIL for whole switch intervals; the training thread needs it between
    steps. While a job with a ``prepare`` companion runs the interval is RUN_AHEAD_SWITCH_INTERVAL_S, and
    Python's own (here a longer one, 10 ms) is back once it returns; a job without one runs at Python's."""
    import sys

    from search.executors import RUN_AHEAD_SWITCH_INTERVAL_S

    def running_ahead(job, prepared=None, when_prepared=None):
        when_prepared()
        return {"interval": sys.getswitchinterval(), "prepared": prepared.result() if prepared else None}

    running_ahead.prepare = lambda job: job["number"]

    def plain(job):
        return {"interval": sys.getswitchinterval()}

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.01)
    try:
        executor = SequentialExecutor()
        results = [result for _, result in executor.map_unordered(running_ahead, [{"number": 0}, {"number": 1}])]
        executor.close()
        assert results == [{"interval": RUN_AHEAD_SWITCH_INTERVAL_S, "prepared": None},
                           {"interval": RUN_AHEAD_SWITCH_INTERVAL_S, "prepared": 1}]
        assert sys.getswitchinterval() == 0.01
        assert [r for _, r in SequentialExecutor().map_unordered(plain, [{"number": 0}])] == [{"interval": 0.01}]
    finally:
        sys.setswitchinterval(before)
    assert RUN_AHEAD_SWITCH_INTERVAL_S == 0.0005
