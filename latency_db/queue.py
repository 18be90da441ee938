"""The measurement job queue that farm workers on several hosts share through the latency database.

A job asks for one ``.tflite`` (a whole model or a LUT micro-model, see :mod:`latency_db.job_results`) to
be measured for a *requested* device. Any online phone of the same model (the job's ``pool``) may measure
it; the result is stored under the requested device. Life of a job::

    enqueue ─> queued ─ lease_next ─> leased ─ complete ────────> done
                  ^                     │ ├── fail ─────────────> failed   (the job's fault: no retry)
                  │                     │ └── retry_elsewhere ──> failed   (after max_attempts)
                  └─────────────────────┴── retry_elsewhere, or lease expiry (reclaimed by lease_next)

A worker leases a job and a phone together (:mod:`latency_db.device_health`); both leases expire at the
same time unless renewed, so a worker that dies loses its job to the next ``lease_next`` on any host and
never holds a phone for good. Two workers never hold the same phone, and a job is never leased twice at
once. The job row names its ``.tflite`` by hash; the bytes live in :mod:`latency_db.job_models`.

Every change is one transaction that first claims its rows with a compare-and-set: an ``UPDATE`` whose
``WHERE`` names the state the caller believes the row is in, with its rowcount checked (a stale worker's
``complete`` therefore stores nothing). Candidates for a lease are selected with ``FOR UPDATE SKIP
LOCKED``: on PostgreSQL concurrent workers skip each other's rows instead of waiting; SQLite does not
render it and relies on the store's ``BEGIN IMMEDIATE``, which serialises writers. Rows are claimed in
one order everywhere (jobs, then job models by hash, then devices), so these transactions cannot
deadlock; an enqueue locks its job model before inserting the job, so a concurrent completion that
releases those bytes either finishes first (and the enqueue stores them again) or sees the new job.

Times are timezone-aware UTC; ``now`` parameters exist for tests and default to the clock.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Callable, Iterable, Sequence

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from akd_tf.benchmark import BenchmarkResult, RunSettings
from akd_tf.errors import InvalidInput, MissingData, WaitTimedOut
from latency_db import device_health, job_models, job_results
from latency_db.arguments import bounded_name, positive_int, positive_seconds, utc
from latency_db.devices import get_device
from latency_db.farm_polls import log_wait
from latency_db.schema import Device, Job, utcnow
from latency_db.store import Store

STATES = ("queued", "leased", "done", "failed")
FINAL_STATES = ("done", "failed")
EXTRA_KEYS = ("thermal_before", "thermal_after", "battery_before", "battery_after", "cpu_before", "cpu_after",
              "started_at", "finished_at")
REPORT_EVERY_S = 15.0  # how often a wait on the farm logs what it still waits for
RETRY_ELSEWHERE_S = 60.0  # how long a job a phone failed waits for another phone of its pool


@dataclass(frozen=True)
class Lease:
    """A job and a phone held by one worker until ``expires_at`` (renew it to keep both)."""

    job_id: int
    run_key: str
    kind: str
    payload: dict
    device_name: str  # the phone that will measure
    worker: str
    expires_at: datetime
    model_sha256: str  # the .tflite to measure; read its bytes with latency_db.job_models.model_bytes()
    settings: RunSettings
    requested_device_name: str  # the device whose tables receive the result


class _LeaseLost(Exception):
    """Raised inside a transaction to roll it back when a compare-and-set finds its row changed."""


# --- enqueue -------------------------------------------------------------------------------------------------

def enqueue(session: Session, *, kind: str, device: Device | str, tflite: bytes, settings: RunSettings,
            payload: dict, run_key: str, max_attempts: int = 3) -> Job:
    """Queue the measurement of ``tflite`` for ``device`` (a row or a device name); returns the job.

    ``payload`` is ``{"model_id": int}`` (a stored model) for kind "model" and ``{"key": str,
    "table_id": int}`` (a table version of ``device``) for kind "lut". The job's pool is the device's
    model: any online phone of that model may run it. The bytes are stored once per SHA-256
    (:mod:`latency_db.job_models`): a model already stored adds only the job row. Idempotent: a ``run_key``
    already queued, running or done returns that job unchanged, also when another process enqueues the same
    key concurrently; a failed one is queued afresh with these bytes (attempts, error and output cleared),
    since asking again means its cause was dealt with. A job whose result is already stored (a measurement
    with this ``run_key``, or the LUT key in its table version) is created as "done" at once, keeping only
    the model's hash and size, so re-submitting interrupted work measures nothing twice. Raises ValueError
    for bad arguments, for a device without a recorded model and for a payload naming no model or no table
    version of the device.
    """
    payload = job_results.checked_payload(kind, payload)
    if not isinstance(tflite, (bytes, bytearray)) or not tflite:
        raise InvalidInput(f"tflite must be the non-empty bytes of a .tflite file, got {type(tflite).__name__} "
                           f"of length {len(tflite) if isinstance(tflite, (bytes, bytearray)) else 'n/a'}")
    if not isinstance(settings, RunSettings):
        raise InvalidInput(f"settings must be a RunSettings, got {settings!r}")
    bounded_name("run_key", run_key, 64)
    positive_int("max_attempts", max_attempts)
    if isinstance(device, str):
        device = get_device(session, device)
    digest = sha256(tflite).hexdigest()
    existing = session.scalar(select(Job).where(Job.run_key == run_key))
    if existing is not None:
        if existing.state == "failed":  # asked again after a failure (the cause fixed): a fresh start
            previous = existing.model_sha256
            job_models.lock_models(session, [previous, digest])
            job_models.store_model(session, tflite, digest, len(tflite))
            session.execute(update(Job).where(Job.id == existing.id, Job.state == "failed")
                            .values(state="queued", model_sha256=digest, attempts=0, error=None, raw_output=None,
                                    result=None, last_device_id=None, updated_at=utcnow(), finished_at=None)
                            .execution_options(synchronize_session=False))
            if previous != digest:
                job_models.release_unneeded_models(session, [previous])
            session.refresh(existing)
        elif existing.state != "done" and existing.model_sha256 == digest:
            job_models.store_model(session, tflite, digest, len(tflite))  # bytes dropped as corrupt: stored again
        return existing
    if not device.model:
        raise InvalidInput(f"device {device.name!r} has no model recorded, so no phone pool can run its jobs; "
                           f"probe the device first")
    job_results.check_payload_target(session, kind, payload, device)
    done, measurement_id = job_results.stored_result(session, kind, device, payload, run_key)
    job_models.store_model(session, None if done else tflite, digest, len(tflite))
    now = utcnow()
    job = Job(run_key=run_key, kind=kind, device_id=device.id, pool=device.model, state="done" if done else "queued",
              payload=payload, settings=asdict(settings), model_sha256=digest, attempts=0,
              max_attempts=max_attempts, measurement_id=measurement_id, created_at=now, updated_at=now,
              finished_at=now if done else None)
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:  # another process enqueued this run_key between our select and insert
        job = session.scalar(select(Job).where(Job.run_key == run_key))
        if job is None:
            raise
    return job


# --- leasing -------------------------------------------------------------------------------------------------

def reclaim_expired(session: Session, now: datetime | None = None) -> int:
    """Requeue jobs whose lease expired (their phone becomes their ``last_device_id``, attempts unchanged)
    and clear expired phone leases; returns how many jobs were requeued. Rows another transaction holds
    are skipped (PostgreSQL) and reclaimed by a later call."""
    now = utc(now)
    job_ids = session.scalars(select(Job.id).where(Job.state == "leased", Job.lease_expires_at < now)
                              .with_for_update(skip_locked=True)).all()
    requeued = 0
    if job_ids:
        requeued = session.execute(
            update(Job).where(Job.id.in_(job_ids), Job.state == "leased", Job.lease_expires_at < now)
            .values(state="queued", lease_holder=None, leased_device_id=None, lease_expires_at=None,
                    last_device_id=Job.leased_device_id, updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
    device_health.clear_expired_leases(session, now)
    return requeued


def lease_next(store: Store, *, worker: str, devices: list[str], lease_seconds: float,
               now: datetime | None = None) -> Lease | None:
    """Lease the oldest queued job that one of ``devices`` (names) can run, together with that phone.

    In one transaction: expired leases are reclaimed (:func:`reclaim_expired`); the candidates are the
    named devices that are "online", have a model, and are not leased; a job matches a phone when its
    pool equals the phone's model. Jobs are taken oldest first, except that a job whose last run was on
    the only free phone of its pool goes after the others, and a job goes to a free phone other than its
    last one when there is one (so a retry prefers another phone). Job and phone are leased to ``worker``
    until ``now + lease_seconds``; attempts are unchanged. Returns None when nothing can be leased now
    (no free phone, no matching job, or, on a database without row locks, another worker took the chosen
    rows at the same instant). Raises ValueError for unknown device names or bad arguments.
    """
    bounded_name("worker", worker, 256)
    if isinstance(devices, str) or not isinstance(devices, (list, tuple)) or not devices:
        raise InvalidInput(f"devices must be a non-empty list of device names, got {devices!r}")
    names = sorted({bounded_name("device name", d, 128) for d in devices})
    lease_seconds = positive_seconds("lease_seconds", lease_seconds)
    now = utc(now)
    expires = now + timedelta(seconds=lease_seconds)
    try:
        with store.session() as session:
            known = set(session.scalars(select(Device.name).where(Device.name.in_(names))))
            if len(known) < len(names):
                raise MissingData(f"unknown device(s) {', '.join(n for n in names if n not in known)}; "
                                  f"register them before leasing work for them")
            reclaim_expired(session, now)
            chosen = _choose(session, device_health.free_phones(session, names, now), now)
            if chosen is None:
                return None
            job_id, phone = chosen
            claimed = session.execute(
                update(Job).where(Job.id == job_id, Job.state == "queued")
                .values(state="leased", lease_holder=worker, leased_device_id=phone.id, lease_expires_at=expires,
                        updated_at=now).execution_options(synchronize_session=False)).rowcount
            if claimed != 1 or not device_health.lease_phone(session, phone.id, worker, expires, now):
                raise _LeaseLost
            job = session.scalars(select(Job).where(Job.id == job_id)
                                  .execution_options(populate_existing=True)).one()
            requested = session.scalar(select(Device.name).where(Device.id == job.device_id))
            return Lease(job_id=job.id, run_key=job.run_key, kind=job.kind, payload=dict(job.payload),
                         device_name=phone.name, worker=worker, expires_at=expires, model_sha256=job.model_sha256,
                         settings=RunSettings(**job.settings), requested_device_name=requested)
    except _LeaseLost:
        return None


def _choose(session: Session, free: list[Device], now: datetime) -> tuple[int, Device] | None:
    """(job id, phone) to lease among the free phones, each pool's candidate job locked, or None.

    A job that failed on a phone (:func:`retry_elsewhere`) is not given back to it within
    ``RETRY_ELSEWHERE_S`` while another online phone of its pool exists (served by this worker or another).
    """
    pools: dict[str, list[Device]] = {}
    for device in free:
        pools.setdefault(device.model, []).append(device)
    best = None
    for pool, phones in pools.items():
        query = select(Job.id, Job.last_device_id).where(Job.state == "queued", Job.pool == pool)
        order = [Job.id]
        if len(phones) == 1:  # a job that last ran on the only free phone waits behind the others
            phone = phones[0]
            order.insert(0, case((Job.last_device_id == phone.id, 1), else_=0))
            if device_health.other_online_phones(session, pool, phone.id):
                query = query.where(or_(Job.last_device_id.is_(None), Job.last_device_id != phone.id,
                                        Job.attempts == 0,  # reclaimed from a dead worker, not failed
                                        Job.updated_at < now - timedelta(seconds=RETRY_ELSEWHERE_S)))
        row = session.execute(query.order_by(*order).limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            continue
        others = [p for p in phones if p.id != row.last_device_id]
        rank = (0 if others else 1, row.id)
        if best is None or rank < best[0]:
            best = (rank, row.id, (others or phones)[0])
    return None if best is None else (best[1], best[2])


def _claim(session: Session, lease: Lease, now: datetime) -> tuple[Job, int] | None:
    """Lock the lease's job if ``lease.worker`` still holds it on its phone: (job, phone id), else None."""
    phone_id = device_health.phone_id_of(session, lease.device_name)
    if phone_id is None:
        return None
    claimed = session.execute(
        update(Job).where(Job.id == lease.job_id, Job.state == "leased", Job.lease_holder == lease.worker,
                          Job.leased_device_id == phone_id)
        .values(updated_at=now).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return None
    job = session.scalars(select(Job).where(Job.id == lease.job_id).execution_options(populate_existing=True)).one()
    return job, phone_id


def _end_lease(job: Job, phone_id: int, now: datetime, state: str) -> None:
    job.state = state
    job.lease_holder = job.leased_device_id = job.lease_expires_at = None
    job.last_device_id = phone_id
    job.updated_at = now
    if state in FINAL_STATES:
        job.finished_at = now


def renew(store: Store, lease: Lease, lease_seconds: float, *, now: datetime | None = None) -> bool:
    """Extend the job's and the phone's lease to ``now + lease_seconds``.

    False, changing nothing, when the lease was lost (reclaimed after expiry, or the job finished or the
    phone was leased to another worker meanwhile): the worker should stop and drop its result.
    """
    lease_seconds = positive_seconds("lease_seconds", lease_seconds)
    now = utc(now)
    expires = now + timedelta(seconds=lease_seconds)
    try:
        with store.session() as session:
            claimed = _claim(session, lease, now)
            if claimed is None:
                return False
            job, phone_id = claimed
            job.lease_expires_at = expires
            if not device_health.renew_phone_lease(session, phone_id, lease.worker, expires):
                raise _LeaseLost
    except _LeaseLost:
        return False
    return True


# --- outcomes ------------------------------------------------------------------------------------------------

def complete(store: Store, lease: Lease, result: BenchmarkResult, *, extra: dict | None = None,
             now: datetime | None = None) -> bool:
    """Store the result under the requested device and mark the job "done"; False if the lease was lost.

    The result is stored by kind (:func:`latency_db.job_results.store_result`; its settings gain
    ``"measured_on": <phone name>``). ``extra`` may hold ``thermal_before``, ``thermal_after``,
    ``battery_before``, ``battery_after``, ``cpu_before``, ``cpu_after`` (dicts, stored with measurements)
    and ``started_at``/
    ``finished_at`` (default: now). The job keeps the result (without raw output, which gets its own
    column), the measurement id and the finish time; the model's bytes are released when no other queued,
    leased or failed job names them; the phone's lease is released, its failure count reset and
    ``last_seen_at`` set. A lost lease stores nothing at all.
    """
    if not isinstance(result, BenchmarkResult):
        raise InvalidInput(f"result must be a BenchmarkResult, got {type(result).__name__}")
    extra = dict(extra or {})
    unknown = sorted(set(extra) - set(EXTRA_KEYS))
    if unknown:
        raise InvalidInput(f"unknown extra key(s) {', '.join(unknown)}; expected some of {', '.join(EXTRA_KEYS)}")
    now = utc(now)
    finished_at = utc(extra.pop("finished_at", None) or now)
    started_at = utc(extra.pop("started_at", None) or finished_at)
    with store.session() as session:
        claimed = _claim(session, lease, now)
        if claimed is None:
            return False
        job, phone_id = claimed
        data, raw_output = job_results.store_result(session, job, result, measured_on=lease.device_name,
                                                    started_at=started_at, finished_at=finished_at, extra=extra)
        _end_lease(job, phone_id, now, "done")
        job.result, job.raw_output, job.error = data, raw_output, None
        job_models.release_unneeded_models(session, [job.model_sha256])
        device_health.phone_answered(session, phone_id, lease.worker, now)
    return True


def fail(store: Store, lease: Lease, reason: str, raw_output: str = "", *, now: datetime | None = None) -> bool:
    """The job's own fault (corrupt model, unparseable output): mark it "failed" for good with ``reason``.

    ``attempts`` counts this run; the phone's lease is released and, since it answered, its failure
    count reset. False, changing nothing, when the lease was lost.
    """
    bounded_name("reason", reason, 1_000_000)
    now = utc(now)
    with store.session() as session:
        claimed = _claim(session, lease, now)
        if claimed is None:
            return False
        job, phone_id = claimed
        job.attempts += 1
        job.error, job.raw_output = reason, raw_output
        _end_lease(job, phone_id, now, "failed")
        device_health.phone_answered(session, phone_id, lease.worker, now)
    return True


def retry_elsewhere(store: Store, lease: Lease, reason: str, *, offline_after: int = 3,
                    now: datetime | None = None) -> str:
    """The phone's fault (transport dropped, device vanished): count it against the phone, retry the job.

    The phone's lease is released and its failure counted (:func:`latency_db.device_health.phone_failed`:
    "offline" at ``offline_after``). The job's ``attempts`` grows by one and it remembers the phone, so
    its next lease prefers another; at ``max_attempts`` it becomes "failed" with ``"gave up after N
    attempts: <reason>"``, else "queued" again with ``reason`` as its last error. Returns the job's new
    state, or "lost" when the lease was no longer held (the job is left as it is; the phone's failure
    still counts).
    """
    bounded_name("reason", reason, 1_000_000)
    positive_int("offline_after", offline_after)
    now = utc(now)
    with store.session() as session:
        claimed = _claim(session, lease, now)
        state = "lost"
        if claimed is not None:
            job, phone_id = claimed
            job.attempts += 1
            if job.attempts >= job.max_attempts:
                job.error = f"gave up after {job.attempts} attempts: {reason}"
                state = "failed"
            else:
                job.error = reason
                state = "queued"
            _end_lease(job, phone_id, now, state)
            session.flush()
        else:
            phone_id = device_health.phone_id_of(session, lease.device_name)
            if phone_id is None:
                return state
        device_health.phone_failed(session, phone_id, lease.worker, offline_after)
    return state


# --- watching ------------------------------------------------------------------------------------------------

def job_states(store: Store, job_ids: Sequence[int]) -> dict[int, str]:
    """``{job id: state}`` of the jobs of ``job_ids`` that exist, as they are now."""
    job_ids = list(job_ids)
    states: dict[int, str] = {}
    with store.session() as session:
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start:start + 500]
            states.update(session.execute(select(Job.id, Job.state).where(Job.id.in_(chunk))).all())
    return states


def wait_for(store: Store, job_ids: Iterable[int], *, timeout_s: float | None = None, poll_s: float = 0.5,
             progress: Callable[[int, int, int], None] | None = None,
             report_every_s: float = REPORT_EVERY_S, first: bool = False) -> dict[int, str]:
    """Block until every job is "done" or "failed" (with ``first``: until any one is); returns
    ``{job id: state}``.

    ``progress(done, failed, total)`` is called once at the start and whenever the counts change. At the
    start and every ``report_every_s`` while jobs are pending, :func:`latency_db.farm_polls.log_wait` logs
    what is awaited and warns of phones no worker serves. Raises MissingData for ids that name no job, and
    WaitTimedOut, naming how many are still pending, once ``timeout_s`` has passed (None: wait for ever).
    Jobs only move while workers run.
    """
    ids = sorted(set(job_ids))
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise InvalidInput(f"job ids must be ints, got {ids!r}")
    poll_s = positive_seconds("poll_s", poll_s)
    if timeout_s is not None:
        timeout_s = float(timeout_s)
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise InvalidInput(f"timeout_s must be None or a finite number of seconds >= 0, got {timeout_s!r}")
    report_every_s = positive_seconds("report_every_s", report_every_s)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last, next_report = None, time.monotonic()
    while True:
        states = job_states(store, ids)
        missing = [i for i in ids if i not in states]
        if missing:
            raise MissingData(f"no job with id(s) {', '.join(map(str, missing))}")
        counts = (sum(s == "done" for s in states.values()), sum(s == "failed" for s in states.values()), len(ids))
        if progress is not None and counts != last:
            progress(*counts)
        last = counts
        pending = counts[2] - counts[0] - counts[1]
        if pending == 0 or (first and pending < counts[2]):
            return {i: states[i] for i in ids}
        if time.monotonic() >= next_report:
            log_wait(store, [i for i in ids if states[i] not in FINAL_STATES], *counts)
            next_report = time.monotonic() + report_every_s
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimedOut(f"{pending} of {counts[2]} job(s) still pending after {timeout_s:g} s "
                               f"({counts[0]} done, {counts[1]} failed); are workers running?")
        time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))
