"""The two kinds of farm job: what each one's payload names and where its result is stored.

A "model" job (payload ``{"model_id": int}``) measures a stored whole model; its result becomes a
:class:`~latency_db.schema.Measurement` whose ``run_key`` is the job's. A "lut" job (payload ``{"key": str,
"table_id": int}``) measures an operator micro-model; its result becomes a
:class:`~latency_db.schema.LutEntry` of that table version of the requested device, the version the
requester was building when it queued the job (so a result never lands in a version measured otherwise).
Either is stored at most once, so a job whose result is already stored measures nothing again. The
session functions run inside the queue's transactions (:mod:`latency_db.queue`).
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from akd_tf.benchmark import BenchmarkResult
from akd_tf.errors import InvalidInput, MissingData
from latency_db.measurements import record_measurement
from latency_db.schema import Device, Job, LatencyTable, LutEntry, Measurement, TFLiteModel, TimedRunStats

KINDS = ("model", "lut")
_PAYLOADS = {"model": {"model_id": int}, "lut": {"key": str, "table_id": int}}


def checked_payload(kind: str, payload) -> dict:
    """A copy of ``payload`` once it has exactly the keys and types of ``kind``'s (non-empty values)."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    expected = _PAYLOADS[kind]
    if not isinstance(payload, dict) or set(payload) != set(expected) or any(
            isinstance(payload[k], bool) or not isinstance(payload[k], t) or payload[k] in ("", ())
            for k, t in expected.items()):
        shape = ", ".join(f'"{k}": {t.__name__}' for k, t in expected.items())
        raise InvalidInput(f"payload of a {kind} job must be {{{shape}}} (non-empty), got {payload!r}")
    return dict(payload)


def check_payload_target(session: Session, kind: str, payload: dict, device: Device) -> None:
    """ValueError when a model job's ``model_id`` names no stored model, or a LUT job's ``table_id`` no table
    version of ``device``, the requested device."""
    if kind == "model" and session.get(TFLiteModel, payload["model_id"]) is None:
        raise MissingData(f"payload model_id {payload['model_id']} names no stored model")
    if kind == "lut":
        table = session.get(LatencyTable, payload["table_id"])
        if table is None or table.device_id != device.id:
            raise MissingData(f"payload table_id {payload['table_id']} names no latency table of device "
                              f"{device.name!r}")


def stored_result(session: Session, kind: str, device: Device, payload: dict, run_key: str) -> tuple[bool, int | None]:
    """(whether the result of this request is already stored, its measurement id) for a job about to be queued."""
    if kind == "model":
        measurement_id = session.scalar(select(Measurement.id).where(Measurement.run_key == run_key))
        return measurement_id is not None, measurement_id
    entry = session.scalar(select(LutEntry.id).where(LutEntry.table_id == payload["table_id"],
                                                     LutEntry.key == payload["key"]))
    return entry is not None, None


def store_result(session: Session, job: Job, result: BenchmarkResult, *, measured_on: str, started_at: datetime,
                 finished_at: datetime, extra: dict) -> tuple[dict, str]:
    """Store ``result`` of ``job`` under its requested device; returns (the result as JSON-safe data without
    its raw output, the raw output) for the job row.

    The stored settings gain ``"measured_on": measured_on`` (the phone's name). A model job gets a
    measurement (``extra``: thermal, battery and CPU readings; one already stored under the job's run key is
    reused) and its ``measurement_id``; a LUT job adds an entry measured at ``finished_at`` to its table
    version unless that version already has the key. ValueError when a model job's model was deleted meanwhile.
    """
    requested = session.get(Device, job.device_id)
    data = _json_safe(result.to_dict())
    raw_output = data.pop("raw_output")
    settings = {**data["settings"], "measured_on": measured_on}
    if job.kind == "model":
        job.measurement_id = _store_measurement(session, job, requested, result, settings, started_at, finished_at,
                                                extra)
    else:
        _store_lut_entry(session, job, result, settings, finished_at)
    return data, raw_output


def _json_safe(value):
    """``value`` with NaN and infinities replaced by None (PostgreSQL's JSON rejects them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _store_measurement(session: Session, job: Job, requested: Device, result: BenchmarkResult, settings: dict,
                       started_at: datetime, finished_at: datetime, extra: dict) -> int:
    stored = session.scalar(select(Measurement).where(Measurement.run_key == job.run_key))
    if stored is not None:
        return stored.id
    model = session.get(TFLiteModel, job.payload["model_id"])
    if model is None:
        raise InvalidInput(f"job {job.id}: model {job.payload['model_id']} was deleted; the result cannot be stored")
    row = record_measurement(session, requested, model, result, run_key=job.run_key, started_at=started_at,
                             finished_at=finished_at, extra=extra)
    row.settings = settings
    return row.id


def _store_lut_entry(session: Session, job: Job, result: BenchmarkResult, settings: dict,
                     measured_at: datetime) -> None:
    key, table_id = job.payload["key"], job.payload["table_id"]
    if session.scalar(select(LutEntry.id).where(LutEntry.table_id == table_id, LutEntry.key == key)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(LutEntry(table_id=table_id, key=key, settings=settings, measured_at=measured_at,
                                 **TimedRunStats.of(result)))
    except IntegrityError:
        pass  # a LUT builder stored this key meanwhile; the stored entry stands
