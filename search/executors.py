"""Where children are trained: in this process, in local worker processes, or on a Ray cluster.

An executor starts a job (``submit(fn, job, name=...)``, a handle back) and hands back the next one that finishes
(``wait_one(handles)``: ``(handle, result)``), so a search can keep every worker busy;
``map_unordered`` runs one function over a list of jobs with them and yields ``(job, result)`` pairs in
completion order. Only training runs in an executor; the search process itself records every result
in the database, so the database stays the single record whatever executes. A worker that dies (killed,
out of memory), a Ray task or node that dies, yields a failed result for its job rather than stopping the
search, with the kind of failure (:mod:`search.failures`) that makes the search retry it.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
from typing import Callable, Iterable, Iterator

from akd_tf.errors import InvalidInput
from search.checks import check_int
from search.failures import Failure, ray_failure, worker_died

EXECUTORS = {
    "local": "this machine: the search process itself (--workers 1) or N worker processes",
    "ray": "a Ray cluster (--ray-address, default: start a local one with --workers CPUs); install with "
           "pip install 'akd-tf[ray]'",
}
RAY_POLL_S = 5.0
# A proxy child's fit beside the next child's preparation ran 3-5% faster at 0.5 ms than at Python's default 5 ms,
# the preparation no slower (3 children, one process); benchmarks/scheduling.py switch-interval measures the search.
RUN_AHEAD_SWITCH_INTERVAL_S = 0.0005


def _died(failure: Failure, shared_with: int = 0) -> dict:
    """The result of a job whose worker never returned one (``train_child``'s failed-result shape), and
    ``shared_with``: how many other jobs ran beside it (:mod:`search.failures`: then none is to blame)."""
    return {"status": "failed", "kind": failure.kind, "error": failure.reason, "train_seconds": None,
            "worker": None, "shared_with": shared_with}


class _Executor:
    """``wait_one(handles, timeout=None)``: the next of ``handles`` to finish, ``(handle, result)``; with a
    ``timeout`` (seconds) None if none finished by then (an executor that runs a job when waited for runs
    one all the same)."""

    def map_unordered(self, fn: Callable[[dict], dict], jobs: Iterable[dict],
                      name: Callable[[dict], str] | None = None) -> Iterator[tuple[dict, dict]]:
        """``fn`` over ``jobs``, ``(job, result)`` in completion order; ``name``: a job's name from the job."""
        handles = {self.submit(fn, job, name=None if name is None else name(job)): job for job in jobs}
        while handles:
            handle, result = self.wait_one(list(handles))
            yield handles.pop(handle), result


class SequentialExecutor(_Executor):
    """Runs each job in this process, one after another (as many ops side by side as the process has cores):
    a job runs when :meth:`wait_one` asks for it.

    Running ahead: a job function with a ``prepare`` companion (``fn.prepare(job)``, as
    :func:`search.evaluate.train_child` has) is called as ``fn(job, prepared=..., when_prepared=...)``. Once the
    running job says it is prepared, the next job submitted is prepared in a thread of its own while the
    running one computes, and its future is handed to it when it runs. One preparation at a time, never two:
    what one job's preparation does to process-wide state (say, the random seed) is never mixed with another's.

    While a job with a ``prepare`` companion runs, Python's GIL switch interval is at most
    :data:`RUN_AHEAD_SWITCH_INTERVAL_S`: the preparing thread (Python tracing) holds the GIL for whole switch
    intervals, and the training thread needs it for a moment between steps; at Python's default of 5 ms a
    step's end waited for it. Nothing about the results changes.
    """

    workers = capacity = 1  # children that run at once
    threads_per_child = None

    def __init__(self):
        self._queued: dict[int, tuple[Callable[[dict], dict], dict]] = {}
        self._prepared: dict[int, concurrent.futures.Future] = {}
        self._next = 0

    def submit(self, fn: Callable[[dict], dict], job: dict, name: str | None = None) -> int:
        self._next += 1
        self._queued[self._next] = (fn, job)
        return self._next

    def wait_one(self, handles: list, timeout: float | None = None) -> tuple[object, dict]:
        handle = min(handles)  # in the order submitted; it runs now, whatever the timeout
        fn, job = self._queued.pop(handle)
        if getattr(fn, "prepare", None) is None:
            return handle, fn(job)
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, RUN_AHEAD_SWITCH_INTERVAL_S))
        try:
            return handle, fn(job, prepared=self._prepared.pop(handle, None),
                              when_prepared=lambda: self._prepare_next(fn))
        finally:
            sys.setswitchinterval(previous)

    def _prepare_next(self, fn: Callable) -> None:
        """Start preparing the first queued job of ``fn`` not prepared yet, if any."""
        waiting = [h for h, (queued_fn, _) in self._queued.items() if queued_fn is fn and h not in self._prepared]
        if waiting:
            handle = min(waiting)
            self._prepared[handle] = _in_new_thread(fn.prepare, self._queued[handle][1])

    def close(self) -> None:
        self._queued.clear()
        concurrent.futures.wait(list(self._prepared.values()))  # a preparation still running finishes, unused
        self._prepared.clear()


def _in_new_thread(fn: Callable[[dict], object], job: dict) -> concurrent.futures.Future:
    """``fn(job)`` in a new daemon thread (a new thread, so thread-local state, Keras' graph among it, starts
    empty); its result or exception comes through the future."""
    future = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(job))
        except BaseException as exc:  # noqa: B036  (handed to whoever waits on the future, as a pool does)
            future.set_exception(exc)

    threading.Thread(target=run, name="prepare-next-child", daemon=True).start()
    return future


def core_sets(workers: int, cores_per_worker: int, available: Iterable[int]) -> list[frozenset[int]]:
    """``workers`` disjoint sets of ``cores_per_worker`` cores each, taken in order from ``available`` (the
    cores this process may run on); ``InvalidInput`` naming both counts when there are too few."""
    check_int("workers", workers, 1)
    check_int("cores per worker", cores_per_worker, 1)
    cores = sorted(available)
    needed = workers * cores_per_worker
    if needed > len(cores):
        raise InvalidInput(f"--cores-per-worker {cores_per_worker} with {workers} worker(s) needs {needed} cores; "
                           f"this process may run on {len(cores)} ({', '.join(map(str, cores))}). Lower "
                           f"--cores-per-worker or --workers.")
    return [frozenset(cores[i * cores_per_worker:(i + 1) * cores_per_worker]) for i in range(workers)]


PIN_WAIT_S = 60.0  # a new worker takes its cores from a queue its pool filled before starting it


def _pin_worker(cores_queue) -> None:
    """A pool worker's initializer: run this process (and every thread it starts) on the next free core set."""
    os.sched_setaffinity(0, cores_queue.get(timeout=PIN_WAIT_S))


class ProcessExecutor(_Executor):
    """``workers`` local processes (spawned, so each has its own TensorFlow), kept for the whole search.

    Without ``cores_per_worker`` the workers share the cores this process may run on (``threads_per_child``,
    the ops a child runs side by side: those cores over the workers) and the system places them. With it,
    each worker runs on ``cores_per_worker`` cores of its own (:func:`core_sets` of the cores this process may
    use), as many ops side by side, so workers never compete for a core; a pool started again after a worker
    died hands out the same sets.

    A worker that dies breaks the pool: every job it held fails with a ``worker-died`` result, whose
    ``shared_with`` counts the other jobs that ran while it did (any of them may have caused the death, by
    taking the memory, say; 0: the job ran alone, so the death was its own). A job beside it that finished
    still counts: Python's pool may notice a death only when another job finishes.
    """

    def __init__(self, workers: int, cores_per_worker: int | None = None):
        self.workers = self.capacity = workers
        self._core_sets = None if cores_per_worker is None else core_sets(workers, cores_per_worker,
                                                                          os.sched_getaffinity(0))
        self.threads_per_child = cores_per_worker or max(1, len(os.sched_getaffinity(0)) // workers)
        self._pool = None
        self._lock = threading.Lock()
        self._running: set[concurrent.futures.Future] = set()  # submitted, not finished
        self._beside: dict[concurrent.futures.Future, int] = {}  # a job -> how many others ran while it did

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            pinning = {}
            if self._core_sets is not None:
                cores_queue = context.Queue()
                for cores in self._core_sets:
                    cores_queue.put(cores)
                pinning = {"initializer": _pin_worker, "initargs": (cores_queue,)}
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                                                **pinning)
        return self._pool

    def submit(self, fn: Callable[[dict], dict], job: dict, name: str | None = None) -> concurrent.futures.Future:
        future = self._start().submit(fn, job)
        with self._lock:
            for other in self._running:
                self._beside[other] += 1
            self._beside[future] = len(self._running)
            self._running.add(future)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._running.discard(future)

    def wait_one(self, handles: list, timeout: float | None = None) -> tuple[object, dict] | None:
        done, _ = concurrent.futures.wait(handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        if not done:
            return None
        future = next(f for f in handles if f in done)  # the first submitted of those done
        with self._lock:  # its done-callback may not have run yet: a job submitted next must not count it
            self._running.discard(future)
            beside = self._beside.pop(future, 0)
        try:
            result = future.result()
        except concurrent.futures.process.BrokenProcessPool as exc:
            result = _died(worker_died(str(exc) or "the worker process pool broke"), shared_with=beside)
            if self._pool is not None and getattr(self._pool, "_broken", False):
                self._pool = None  # a fresh pool for the retries; this pool's other jobs also report it
        return future, result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            self._running, self._beside = set(), {}


class RayExecutor(_Executor):
    """Each job is a Ray task (``num_cpus`` each) on the cluster at ``address`` (None: a local Ray)."""

    def __init__(self, workers: int, address: str | None = None, cpus_per_child: float = 1.0):
        try:
            import ray
        except ModuleNotFoundError:
            raise InvalidInput("--executor ray needs Ray: pip install 'akd-tf[ray]'") from None
        self._ray, self._tasks = ray, {}
        self.workers, self.address, self.cpus_per_child = workers, address, cpus_per_child
        self.threads_per_child = max(1, int(cpus_per_child))  # what Ray reserves for each task
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options = {"address": address} if address else {"num_cpus": workers}
            try:
                ray.init(**options, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                                   if k.startswith(("TF_", "AKD_TF_"))}})
            except ConnectionError as exc:
                raise InvalidInput(f"cannot join the Ray cluster at {address or 'a new local Ray'}: {exc}; check "
                                   f"--ray-address, and if the cluster uses token authentication (Ray >= 2.60 "
                                   f"`ray start`), export RAY_AUTH_MODE=token here too") from exc

    @property
    def capacity(self) -> int:
        """Children that run at once: ``workers`` on a local Ray, the cluster's CPUs over a child's on a cluster."""
        if self.address is None:
            return self.workers
        return max(1, int(self._ray.cluster_resources().get("CPU", 1) // self.cpus_per_child))

    def submit(self, fn: Callable[[dict], dict], job: dict, name: str | None = None):
        if fn not in self._tasks:
            self._tasks[fn] = self._ray.remote(num_cpus=self.cpus_per_child, max_retries=0)(fn)
        task = self._tasks[fn] if name is None else self._tasks[fn].options(name=name)
        return task.remote(job)

    def wait_one(self, handles: list, timeout: float | None = None) -> tuple[object, dict] | None:
        ray = self._ray
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            poll_s = RAY_POLL_S if deadline is None else max(0.0, min(RAY_POLL_S, deadline - time.monotonic()))
            ready, _ = ray.wait(list(handles), num_returns=1, timeout=poll_s)
            if ready:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return None
        ref = ready[0]
        try:
            result = ray.get(ref, timeout=RAY_POLL_S)
        except ray.exceptions.RayTaskError:
            raise  # train_child itself raised (data or teacher problems): as in this process, it stops
        except ray.exceptions.RayError as exc:  # the task, its worker or its node died; Ray gave up
            result = _died(ray_failure(exc))
        return ref, result

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(name: str, workers: int | None = None, ray_address: str | None = None,
                  cores_per_worker: int | None = None):
    """The executor called ``name`` (see :data:`EXECUTORS`) with ``workers`` children at a time (None: 1).

    ``workers`` sizes what runs on this machine (processes, or the local Ray started without
    ``ray_address``); on a Ray cluster the cluster's CPUs decide, so the two together are refused.
    ``cores_per_worker`` (local only) pins each worker process to that many cores of its own
    (:class:`ProcessExecutor`); then even one worker trains in a process of its own, not in this one.
    """
    if name not in EXECUTORS:
        raise InvalidInput(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    if ray_address is not None and name != "ray":
        raise InvalidInput("--ray-address needs --executor ray")
    if ray_address is not None and workers is not None:
        raise InvalidInput("--workers and --ray-address do not go together: --workers sizes this machine's workers "
                           "(or the local Ray started without --ray-address); on the cluster at --ray-address each "
                           "child takes one CPU and the cluster's CPUs decide how many train at once. Leave out "
                           "--workers.")
    if cores_per_worker is not None and name != "local":
        raise InvalidInput("--cores-per-worker pins local worker processes; with --executor ray, Ray places each "
                           "child (one CPU each)")
    workers = 1 if workers is None else workers
    check_int("workers", workers, 1)
    if name == "ray":
        return RayExecutor(workers, ray_address)
    if cores_per_worker is not None:
        return ProcessExecutor(workers, cores_per_worker)
    return SequentialExecutor() if workers == 1 else ProcessExecutor(workers)
