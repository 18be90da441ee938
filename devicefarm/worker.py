"""A farm worker: serves the phones attached to this host, one thread per phone.

Each phone's thread loops: lease a job for that phone (with an expiry, renewed
by a heartbeat while the benchmark runs), read its model's bytes by hash (checked
against it; missing or corrupt bytes fail the job), push them from memory,
measure, store the result and release. The loop is one measurement session on the
phone (:meth:`devicefarm.runner.PhoneRunner.session`): fixed-performance mode, where
asked for and offered, stays on while the worker serves and is turned off when it stops.
A phone that drops or is unhealthy hands the job back for another phone of the
same model (:func:`latency_db.queue.retry_elsewhere`, which marks a phone that
keeps failing offline); a job whose model or output is at fault fails once with
its raw output. A worker that is killed leaves leases that expire and are
reclaimed by the next worker that asks for work. Which phones a worker serves
when none are named is :mod:`devicefarm.serving`'s to say.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from akd_tf.benchmark import latency_us
from akd_tf.errors import InvalidInput
from devicefarm.connection import PhoneConnection, PhoneUnavailable
from devicefarm.probe import read_condition
from devicefarm.runner import DEFAULT_WORKDIR, MeasurementFailed, PhoneLimits, PhoneRunner, PhoneUnhealthy
from latency_db import queue
from latency_db.devices import current_runtime, get_device
from latency_db.farm_polls import STAMP_EVERY_S, release_polls, stamp_poll
from latency_db.job_models import ModelBytesUnavailable, model_bytes
from latency_db.schema import utcnow
from latency_db.store import Store


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerStats:
    outcomes: Counter = field(default_factory=Counter)  # "done" | "failed" | "retried" | "lost" per job
    per_device: Counter = field(default_factory=Counter)  # jobs finished per phone

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class WorkerOptions:
    lease_seconds: float = 60.0  # renewed every third of this while a job runs
    poll_s: float = 1.0
    recheck_offline_s: float = 30.0
    max_jobs: int | None = None  # stop after this many jobs in total
    idle_exit_s: float | None = None  # stop after this long without work
    limits: PhoneLimits = PhoneLimits()
    fixed_performance: bool = True  # measure in Android's fixed-performance mode where the phone offers it
    retry_backoff_s: float = 0.5  # a phone command that drops is tried twice more, this long apart, then twice that

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0 or self.poll_s <= 0:
            raise InvalidInput(f"lease_seconds and poll_s must be > 0, got {self.lease_seconds}, {self.poll_s}")
        if self.retry_backoff_s < 0:
            raise InvalidInput(f"retry_backoff_s must be >= 0, got {self.retry_backoff_s}")


class FarmWorker:
    def __init__(self, store: Store, devices: list[str], *, worker_id: str | None = None,
                 key_path: Path | str | None = None, options: WorkerOptions = WorkerOptions(),
                 log: Callable[[str], None] | None = None):
        if not devices:
            raise InvalidInput("a worker needs at least one phone to serve")
        self.store, self.devices, self.key_path, self.options = store, list(devices), key_path, options
        self.worker_id = worker_id or default_worker_id()
        self.log = log or (lambda message: None)
        self.stop = threading.Event()
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        with store.session() as session:
            for name in self.devices:
                device = get_device(session, name)
                if device.kind != "adb":
                    raise InvalidInput(f"device {name!r} is a {device.kind!r} device; workers serve registered phones")

    def run(self) -> WorkerStats:
        """Serve until ``stop`` is set, ``max_jobs`` are handled or every phone has been idle ``idle_exit_s``;
        then remove this worker's stamps, so the phones count as unserved (and free for the next worker) at once."""
        threads = [threading.Thread(target=self._serve_phone, args=(name,), name=f"akd-tf-{name}", daemon=True)
                   for name in self.devices]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join()
        finally:
            release_polls(self.store, self.worker_id)
        return self.stats

    def _runner(self, name: str) -> PhoneRunner:
        with self.store.session() as session:
            device = get_device(session, name)
            address, core, binary = device.address, device.core, device.benchmark_binary
            workdir = (device.properties or {}).get("workdir", DEFAULT_WORKDIR)
            runtime = current_runtime(device)  # what requests for this phone ask of it (latency_db.farm)
        conn = PhoneConnection(address, key_path=self.key_path, retries=2, backoff_s=self.options.retry_backoff_s)
        return PhoneRunner(conn, core=core, benchmark_binary=binary, name=name, limits=self.options.limits,
                           workdir=workdir, fixed_performance=self.options.fixed_performance, log=self.log,
                           runtime=runtime)

    def _budget_left(self) -> bool:
        with self._lock:
            return self.options.max_jobs is None or self.stats.handled < self.options.max_jobs

    def _serve_phone(self, name: str) -> None:
        runner = self._runner(name)
        try:
            with runner.session():
                self._serve_loop(name, runner)
        finally:
            runner.conn.close()

    def _serve_loop(self, name: str, runner: PhoneRunner) -> None:
        idle_since, last_recheck, last_stamp = time.monotonic(), 0.0, None
        while not self.stop.is_set() and self._budget_left():
            if last_stamp is None or time.monotonic() - last_stamp >= STAMP_EVERY_S:
                stamp_poll(self.store, self.worker_id, name)  # requesters see that this phone is served
                last_stamp = time.monotonic()
            lease = queue.lease_next(self.store, worker=self.worker_id, devices=[name],
                                     lease_seconds=self.options.lease_seconds)
            if lease is None:
                if time.monotonic() - last_recheck > self.options.recheck_offline_s:
                    last_recheck = time.monotonic()
                    self._recheck_if_offline(name, runner)
                if self.options.idle_exit_s is not None and time.monotonic() - idle_since > self.options.idle_exit_s:
                    return
                self.stop.wait(self.options.poll_s)
                continue
            outcome = self._handle(lease, runner)
            with self._lock:
                self.stats.outcomes[outcome] += 1
                self.stats.per_device[name] += 1
            idle_since = time.monotonic()

    def _recheck_if_offline(self, name: str, runner: PhoneRunner) -> None:
        """An offline phone that answers again goes back online."""
        with self.store.session() as session:
            if get_device(session, name).status != "offline":
                return
        try:
            read_condition(runner.conn)
        except PhoneUnavailable:
            return
        with self.store.session() as session:
            device = get_device(session, name)
            device.status, device.consecutive_failures, device.last_seen_at = "online", 0, utcnow()
        self.log(f"{name}: reachable again, back online")

    def _handle(self, lease: queue.Lease, runner: PhoneRunner) -> str:
        try:
            tflite = model_bytes(self.store, lease.model_sha256)
        except ModelBytesUnavailable as error:
            queue.fail(self.store, lease, str(error))
            self.log(f"job {lease.job_id} failed: {error}")
            return "failed"
        heartbeat_stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(lease, heartbeat_stop), daemon=True)
        heartbeat.start()
        try:
            measured = runner.measure(tflite, lease.settings, f"{lease.run_key}.tflite")
        except (PhoneUnavailable, PhoneUnhealthy) as error:
            runner.conn.close()
            state = queue.retry_elsewhere(self.store, lease, str(error))
            self.log(f"job {lease.job_id} on {lease.device_name}: {error}; job is now {state}")
            return "retried" if state == "queued" else "failed"
        except MeasurementFailed as error:
            queue.fail(self.store, lease, str(error), error.raw_output)
            self.log(f"job {lease.job_id} failed: {error}")
            return "failed"
        except Exception as error:  # a defect here must fail this job visibly, not kill the phone's thread
            runner.conn.close()
            queue.fail(self.store, lease, f"worker error on {lease.device_name}: {type(error).__name__}: {error}")
            self.log(f"job {lease.job_id} failed with an unexpected {type(error).__name__}: {error}")
            return "failed"
        finally:
            heartbeat_stop.set()
            heartbeat.join()
        extra = {"thermal_before": measured.before.thermal, "thermal_after": measured.after.thermal,
                 "battery_before": measured.before.battery, "battery_after": measured.after.battery,
                 "cpu_before": measured.before.cpu, "cpu_after": measured.after.cpu}
        if not queue.complete(self.store, lease, measured.result, extra=extra):
            self.log(f"job {lease.job_id}: lease lost before the result was stored; another worker has it")
            return "lost"
        self.log(f"job {lease.job_id} done on {lease.device_name}: {latency_us(measured.result):.0f} us")
        return "done"

    def _heartbeat(self, lease: queue.Lease, done: threading.Event) -> None:
        interval = self.options.lease_seconds / 3.0
        while not done.wait(interval):
            if not queue.renew(self.store, lease, self.options.lease_seconds):
                return
