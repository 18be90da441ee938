"""Requesting measurements from farm devices (phones): every request travels as a job in the database.

The host (``local``) is measured in this process through :mod:`latency_db.backends`; any other device is
measured by a farm worker (``akd-tf devices serve``) that leases the job (:mod:`latency_db.queue`). The
requester converts the model, queues the job with its ``.tflite`` (stored once per content, see
:mod:`latency_db.job_models`) and, unless it only queues, waits for it; the worker stores the measurement
or table entry itself, so queued work completes even if the requester has gone.

:func:`request_many` is the one request path: it keys each request deterministically
(:func:`request_key`: the same device, purpose and settings map to the same job), reuses the live jobs of
those keys (:func:`live_jobs`) without converting anything, converts and submits the rest, then waits
and reports each request's job or error. So an interrupted ``build-lut``, ``calibrate`` or search
resumes without converting or measuring anything twice, and a request whose job failed is queued afresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from akd_tf.benchmark import RunSettings
from akd_tf.errors import DeviceError, InvalidInput
from latency_db import queue
from latency_db.backends import has_backend
from latency_db.devices import current_runtime, get_device
from latency_db.schema import Device, Job
from latency_db.store import Store

MAX_REASONS = 5  # failed jobs named in the error of a batch; the rest are counted


class FarmJobsFailed(DeviceError, ValueError):
    """Some farm jobs of a request failed on their phones; the message names each job and its reason."""


def is_farm_device(device: Device) -> bool:
    """True for devices measured by farm workers rather than in this process."""
    return not has_backend(device)


def for_device_runtime(store: Store, device_name: str, settings: RunSettings) -> RunSettings:
    """``settings`` asking for the farm device's current runtime (its benchmark binary,
    :func:`latency_db.devices.current_runtime`) when they name none: part of the request's key, so another
    binary never answers with this one's measurement, and checked by the worker before it measures."""
    if settings.runtime:
        return settings
    with store.session() as session:
        return replace(settings, runtime=current_runtime(get_device(session, device_name)))


def request_key(device_name: str, purpose: dict, settings: RunSettings) -> str:
    """The deterministic run key of one request: ``purpose`` names what is measured (kind and payload)."""
    text = json.dumps({"device": device_name, "purpose": purpose, "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Submitted:
    job_id: int
    run_key: str


def submit(store: Store, device_name: str, *, kind: str, tflite: bytes, settings: RunSettings, payload: dict,
           run_key: str | None = None) -> Submitted:
    """Queue one measurement of ``tflite`` on ``device_name`` (the existing job for a known run key)."""
    settings = for_device_runtime(store, device_name, settings)
    run_key = run_key or request_key(device_name, {"kind": kind, **payload}, settings)
    with store.session() as session:
        device = get_device(session, device_name)
        if not is_farm_device(device):
            raise InvalidInput(f"device {device_name!r} is measured in this process, not by farm workers")
        job = queue.enqueue(session, kind=kind, device=device, tflite=tflite, settings=settings, payload=payload,
                            run_key=run_key)
        return Submitted(job.id, job.run_key)


def live_jobs(store: Store, run_keys) -> dict[str, Submitted]:
    """The jobs already queued, running or done for these run keys (failed ones are not live)."""
    keys = list(run_keys)
    with store.session() as session:
        rows = session.execute(select(Job.id, Job.run_key).where(Job.run_key.in_(keys), Job.state != "failed")).all()
    return {row.run_key: Submitted(row.id, row.run_key) for row in rows}


def await_jobs(store: Store, job_ids: list[int], *, timeout_s: float | None = None, poll_s: float = 0.5,
               progress: Callable[[int, int, int], None] | None = None) -> None:
    """Wait until every job is finished; :class:`FarmJobsFailed` listing the reasons if any failed.

    Nothing is measured here: run ``akd-tf devices serve`` on the host the phones are attached to.
    """
    states = queue.wait_for(store, job_ids, timeout_s=timeout_s, poll_s=poll_s, progress=progress)
    reasons = _failure_reasons(store, [job_id for job_id, state in states.items() if state == "failed"])
    if reasons:
        raise FarmJobsFailed(_failed_jobs_message(reasons, len(job_ids)))


@dataclass(frozen=True)
class FarmRequest:
    """One measurement asked of the farm.

    ``kind`` and ``payload`` are the job's (see :mod:`latency_db.job_results`) and, with the device and
    settings, make its request key unless ``run_key`` is given. ``subject`` is the caller's own item (an
    architecture, an operator), for its converter to export.
    """

    kind: str
    payload: dict
    subject: object = None
    run_key: str | None = None


@dataclass(frozen=True)
class FarmOutcome:
    """What became of one :class:`FarmRequest`.

    ``job`` is its job (a live one reused, or the one submitted), None when converting or submitting it
    raised ``exception`` (only with ``keep_going``). Once waited for, ``state`` is "done" or "failed" and
    a failed job's ``failure`` is its reason; without waiting both are None.
    """

    request: FarmRequest
    job: Submitted | None
    state: str | None = None
    failure: str | None = None
    exception: Exception | None = None


def request_many(store: Store, device_name: str, requests: Sequence[FarmRequest], settings: RunSettings, *,
                 tflite: Callable[[list[FarmRequest]], Iterable[bytes]], wait: bool = True,
                 wait_timeout_s: float | None = None, wait_progress: Callable[[int, int, int], None] | None = None,
                 on_queued: Callable[[FarmRequest], None] | None = None,
                 keep_going: bool = False) -> list[FarmOutcome]:
    """Measure every request on farm device ``device_name`` with ``settings``; one outcome per request, in order.

    Requests whose key already has a live job (queued, leased or done) reuse it and are not converted.
    ``tflite(pending)`` is called with the other requests, in order, and yields each one's ``.tflite``
    bytes in that order, so a converter may work ahead (in other processes); each is submitted as soon as
    its bytes arrive. ``on_queued(request)`` is called for each reused request first, then for each one
    submitted. Without ``keep_going`` a conversion or submission error propagates at once; with it, it
    becomes that request's ``exception`` and conversion resumes with ``tflite`` of the requests after it
    (database errors always propagate). With ``wait`` this blocks until every job is done or failed
    (:func:`latency_db.queue.wait_for`: ``wait_progress(done, failed, total)``, WaitTimedOut after
    ``wait_timeout_s``); failed jobs become outcomes, not errors (:func:`raise_failed` turns them into one).
    """
    settings = for_device_runtime(store, device_name, settings)
    keys = [r.run_key or request_key(device_name, {"kind": r.kind, **r.payload}, settings) for r in requests]
    live = live_jobs(store, keys)
    jobs: list[Submitted | None] = [live.get(key) for key in keys]
    if on_queued is not None:
        for request, job in zip(requests, jobs):
            if job is not None:
                on_queued(request)
    exceptions: dict[int, Exception] = {}
    pending = [i for i, job in enumerate(jobs) if job is None]
    while pending:  # once per run of the converter: a failure (with keep_going) restarts it after that request
        converted = iter(tflite([requests[i] for i in pending]))
        try:
            for n, i in enumerate(pending):
                try:
                    jobs[i] = submit(store, device_name, kind=requests[i].kind, tflite=next(converted, None),
                                     settings=settings, payload=requests[i].payload, run_key=keys[i])
                except SQLAlchemyError:
                    raise
                except Exception as exc:  # a request's conversion or submission failed: that request's outcome
                    if not keep_going:
                        raise
                    exceptions[i] = exc
                    pending = pending[n + 1:]
                    break
                if on_queued is not None:
                    on_queued(requests[i])
            else:
                pending = []
        finally:
            _close(converted)
    outcomes = [FarmOutcome(r, job, exception=exceptions.get(i)) for i, (r, job) in enumerate(zip(requests, jobs))]
    if not wait:
        return outcomes
    queue.wait_for(store, [job.job_id for job in jobs if job is not None], timeout_s=wait_timeout_s,
                   progress=wait_progress)
    return settled(store, outcomes)


def settled(store: Store, outcomes: Sequence[FarmOutcome]) -> list[FarmOutcome]:
    """``outcomes`` (of :func:`request_many` without waiting) as they are now: each whose job has finished
    with its final ``state`` and, failed, its ``failure``; the others as they were. Nothing waits."""
    unsettled = [o.job.job_id for o in outcomes if o.job is not None and o.state is None]
    final = {job_id: state for job_id, state in queue.job_states(store, unsettled).items()
             if state in queue.FINAL_STATES}
    reasons = _failure_reasons(store, [job_id for job_id, state in final.items() if state == "failed"])
    return [replace(o, state=final[o.job.job_id], failure=reasons.get(o.job.job_id))
            if o.job is not None and o.job.job_id in final else o for o in outcomes]


def raise_failed(outcomes: Sequence[FarmOutcome]) -> None:
    """:class:`FarmJobsFailed` ``"N of M farm jobs failed: job ID: reason; ..."`` (at most ``MAX_REASONS``
    named, by job id) when any outcome's job failed; M counts the distinct jobs of the outcomes."""
    reasons = {o.job.job_id: o.failure for o in outcomes if o.state == "failed"}
    if reasons:
        raise FarmJobsFailed(_failed_jobs_message(reasons, len({o.job.job_id for o in outcomes
                                                                if o.job is not None})))


def _failure_reasons(store: Store, job_ids: list[int]) -> dict[int, str]:
    if not job_ids:
        return {}
    with store.session() as session:
        return dict(session.execute(select(Job.id, Job.error).where(Job.id.in_(job_ids))).all())


def _failed_jobs_message(reasons: dict[int, str], total: int) -> str:
    named = [f"job {job_id}: {reason}" for job_id, reason in sorted(reasons.items())]
    return (f"{len(reasons)} of {total} farm jobs failed: " + "; ".join(named[:MAX_REASONS])
            + (" ..." if len(named) > MAX_REASONS else ""))


def _close(converted: Iterator[bytes]) -> None:
    """Stop a converter early (a generator's clean-up runs: temporary files, worker processes)."""
    close = getattr(converted, "close", None)
    if close is not None:
        close()
