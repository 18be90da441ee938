"""Measurements on farm devices (phones) travel as jobs in the database.

The host (``local``) is measured in this process through
:mod:`latency_db.backends`; any other device is measured by a farm worker
(``akd-tf devices serve``) that leases the job. Here the model is converted, the
job queued with its ``.tflite`` stored in the database (once per content, see
:mod:`latency_db.job_models`), and (unless the caller only queues) waited for; the
worker stores the measurement or table entry itself, so queued work completes
even if the requester has gone.

Run keys make resubmission idempotent: the same request (device, what the
result is for, settings) maps to the same job, so an interrupted ``build-lut``
or ``calibrate`` resumes without converting or measuring anything twice
(:func:`live_jobs` finds the requests already queued before any conversion),
and a request whose job failed is queued afresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable

from sqlalchemy import select

from akd_tf.benchmark import RunSettings
from latency_db import queue
from latency_db.backends import has_backend
from latency_db.devices import get_device
from latency_db.schema import Device, Job
from latency_db.store import Store


def is_farm_device(device: Device) -> bool:
    """True for devices measured by farm workers rather than in this process."""
    return not has_backend(device)


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
    run_key = run_key or request_key(device_name, {"kind": kind, **payload}, settings)
    with store.session() as session:
        device = get_device(session, device_name)
        if not is_farm_device(device):
            raise ValueError(f"device {device_name!r} is measured in this process, not by farm workers")
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
    """Wait until every job is finished; ``ValueError`` listing the reasons if any failed.

    Nothing is measured here: run ``akd-tf devices serve`` on the host the phones are attached to.
    """
    states = queue.wait_for(store, job_ids, timeout_s=timeout_s, poll_s=poll_s, progress=progress)
    failed = [job_id for job_id, state in states.items() if state == "failed"]
    if failed:
        with store.session() as session:
            reasons = [f"job {j.id}: {j.error}"
                       for j in session.scalars(select(Job).where(Job.id.in_(failed)).order_by(Job.id))]
        raise ValueError(f"{len(failed)} of {len(job_ids)} farm jobs failed: " + "; ".join(reasons[:5])
                         + (" ..." if len(reasons) > 5 else ""))
