"""Whole-architecture measurements: export, measure on a device, store (idempotently).

The host is measured in this process; a phone through farm jobs (:func:`latency_db.farm.request_many`),
whose worker stores the measurement. The rows themselves are :mod:`latency_db.measurements`.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import select

from akd_tf.benchmark import WHOLE_MODEL_SETTINGS, RunSettings
from akd_tf.space import Arch
from akd_tf.target import ModelTarget
from latency_db import farm
from latency_db.backends import backend_for, measure_files
from latency_db.devices import current_runtime, measuring_device
from latency_db.measurements import (get_or_create_model, latest_measurement, measurement_by_run_key,
                                     record_measurement)
from latency_db.schema import Measurement, utcnow
from latency_db.store import Store


def export_untrained(arch: Arch, target: ModelTarget, out_path: Path, seed: int):
    """Export ``arch`` with seeded random weights at ``target`` to ``out_path``: what latency is measured on."""
    from akd_tf.export import export_arch

    return export_arch(arch, target.input_shape, target.classes, out_path, target.quantization, seed=seed)


def submit_arch(store: Store, device_name: str, arch: Arch, target: ModelTarget, *,
                settings: RunSettings = WHOLE_MODEL_SETTINGS, run_key: str | None = None, seed: int = 0):
    """Export ``arch`` untrained and queue its measurement on a farm device; returns the :class:`Submitted` job.

    Without ``run_key`` the request's deterministic key is used (:func:`latency_db.farm.request_key`).
    """
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = export_untrained(arch, target, Path(tmp) / "model.tflite", seed)
        return _request_file(store, device_name, arch, target, exported.path, exported.sha256, settings, run_key,
                             wait=False).job


def _request_file(store: Store, device_name: str, arch: Arch, target: ModelTarget, path, sha256: str,
                  settings: RunSettings, run_key: str | None, *, wait: bool, wait_timeout_s: float | None = None,
                  wait_progress: Callable[[int, int, int], None] | None = None) -> farm.FarmOutcome:
    """Request the measurement of the exported ``.tflite`` at ``path`` from the farm (waiting if ``wait``);
    ValueError naming the reason if its job failed."""
    with store.session() as session:
        model_id = get_or_create_model(session, arch, target, sha256).id
    request = farm.FarmRequest("model", {"model_id": model_id}, subject=arch, run_key=run_key)
    outcomes = farm.request_many(store, device_name, [request], settings,
                                 tflite=lambda pending: (Path(path).read_bytes() for _ in pending), wait=wait,
                                 wait_timeout_s=wait_timeout_s, wait_progress=wait_progress)
    farm.raise_failed(outcomes)
    return outcomes[0]


def request_archs(store: Store, device_name: str, archs: Sequence[Arch], target: ModelTarget, *,
                  settings: RunSettings = WHOLE_MODEL_SETTINGS, wait_timeout_s: float | None = None,
                  wait_progress: Callable[[int, int, int], None] | None = None,
                  keep_going: bool = False, wait: bool = True) -> list[farm.FarmOutcome]:
    """Measure ``archs`` on farm device ``device_name`` and wait (unless not ``wait``): one
    :class:`~latency_db.farm.FarmOutcome` each.

    Each arch's model row (created without conversion) names its request, so an arch whose job is live is
    not exported; the others are exported untrained (seed 0) one by one as they are submitted. Failed
    jobs, and with ``keep_going`` failed exports, are outcomes (see :func:`latency_db.farm.request_many`).
    """
    with store.session() as session:
        requests = [farm.FarmRequest("model", {"model_id": get_or_create_model(session, arch, target).id},
                                     subject=arch) for arch in archs]

    def exported(pending: list[farm.FarmRequest]):
        for request in pending:
            with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
                exported_model = export_untrained(request.subject, target, Path(tmp) / "model.tflite", 0)
                with store.session() as session:
                    get_or_create_model(session, request.subject, target, exported_model.sha256)
                tflite = Path(exported_model.path).read_bytes()
            yield tflite

    return farm.request_many(store, device_name, requests, settings, tflite=exported, wait=wait,
                             wait_timeout_s=wait_timeout_s, wait_progress=wait_progress, keep_going=keep_going)


def measure_arch(store: Store, device_name: str, arch: Arch, target: ModelTarget, *,
                 settings: RunSettings = WHOLE_MODEL_SETTINGS, run_key: str | None = None,
                 seed: int = 0, wait_timeout_s: float | None = None,
                 wait_progress: Callable[[int, int, int], None] | None = None) -> Measurement:
    """Export ``arch`` untrained, measure it on the device, store model and measurement; returns the row.

    The host is measured in this process; a phone through a farm job, waiting (up to ``wait_timeout_s``)
    for a worker to measure it.
    """
    with store.session() as session:
        if run_key is not None:
            stored = session.scalar(select(Measurement).where(Measurement.run_key == run_key))
            if stored is not None:
                return stored
        measuring_device(session, device_name)  # an unknown device, or another host's, fails before the export
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = export_untrained(arch, target, Path(tmp) / "model.tflite", seed)
        return measure_tflite(store, device_name, arch, target, exported.path, exported.sha256, settings=settings,
                              run_key=run_key, wait_timeout_s=wait_timeout_s, wait_progress=wait_progress)


def measure_tflite(store: Store, device_name: str, arch: Arch, target: ModelTarget, path, sha256: str, *,
                   settings: RunSettings = WHOLE_MODEL_SETTINGS, run_key: str | None = None,
                   wait_timeout_s: float | None = None,
                   wait_progress: Callable[[int, int, int], None] | None = None) -> Measurement:
    """Measure the exported ``.tflite`` at ``path`` (of ``arch`` at ``target``) on the device and store it.

    The host is measured in this process; a phone through a farm job, waited for up to ``wait_timeout_s``.
    """
    run_key = run_key or uuid.uuid4().hex
    with store.session() as session:
        device = measuring_device(session, device_name)
        session.expunge(device)
    if farm.is_farm_device(device):
        outcome = _request_file(store, device_name, arch, target, path, sha256, settings, run_key, wait=True,
                                wait_timeout_s=wait_timeout_s, wait_progress=wait_progress)
        return measurement_by_run_key(store, outcome.job.run_key)
    started = utcnow()
    result = backend_for(device)(device, str(path), settings)
    finished = utcnow()
    with store.session() as session:
        row = get_or_create_model(session, arch, target, sha256)
        return record_measurement(session, device, row, result, run_key=run_key, started_at=started,
                                  finished_at=finished)


# Archs measured on the host with their repeats interleaved: a burst of interference then touches one
# repeat of several models instead of every repeat of one; an interruption loses at most this many.
INTERLEAVED_BATCH = 10


def _measure_interleaved(store: Store, device_name: str, archs: list[Arch], target: ModelTarget,
                         settings: RunSettings, progress: Callable[[Arch], None] | None) -> dict[Arch, Measurement]:
    """Export ``archs``, measure them on the host with interleaved repeats, store each measurement."""
    with store.session() as session:
        device = measuring_device(session, device_name)
        session.expunge(device)
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = [export_untrained(arch, target, Path(tmp) / f"model{i}.tflite", 0) for i, arch in enumerate(archs)]
        started = utcnow()
        results = measure_files(device, [e.path for e in exported], settings)
        finished = utcnow()
    rows = {}
    for arch, export, result in zip(archs, exported, results):
        with store.session() as session:  # the device row was refreshed once, above
            model = get_or_create_model(session, arch, target, export.sha256)
            rows[arch] = record_measurement(session, device, model, result, run_key=uuid.uuid4().hex,
                                            started_at=started, finished_at=finished)
            session.expunge(rows[arch])
        if progress is not None:
            progress(arch)
    return rows


def measure_many(store: Store, device_name: str, archs: list[Arch], target: ModelTarget, *,
                 settings: RunSettings = WHOLE_MODEL_SETTINGS, wait_timeout_s: float | None = None,
                 progress: Callable[[Arch], None] | None = None) -> dict[Arch, Measurement]:
    """The latest measurement of each arch taken by the device's current runtime
    (:func:`latency_db.devices.current_runtime`) with ``settings.num_threads``, measuring the archs that have
    none: a measurement from before an interpreter or ``benchmark_model`` upgrade, or with other threads, is
    never reused (it belongs to another table version, and a calibration to one version).

    On the host they are measured in batches of :data:`INTERLEAVED_BATCH`, their repeats interleaved
    (``progress`` after each batch). On a phone every missing arch is queued first (deterministic run keys:
    an interrupted call resumes) and the farm measures them in parallel; ``progress`` is called per arch as
    each is ready.
    ValueError naming the failed jobs if any failed.
    """
    with store.session() as session:
        device = measuring_device(session, device_name)
        runtime = current_runtime(device)
        rows = {a: latest_measurement(session, device, a, target, runtime=runtime, num_threads=settings.num_threads)
                for a in archs}
        for row in {row for row in rows.values() if row is not None}:  # archs of one network share their row
            session.expunge(row)
        farm_device = farm.is_farm_device(device)
    for arch in archs:
        if rows[arch] is not None and progress is not None:
            progress(arch)
    missing = [a for a in archs if rows[a] is None]
    if not farm_device:
        for start in range(0, len(missing), INTERLEAVED_BATCH):
            rows.update(_measure_interleaved(store, device_name, missing[start:start + INTERLEAVED_BATCH], target,
                                             settings, progress))
        return rows
    reported = 0

    def on_change(done: int, failed: int, _total: int) -> None:
        nonlocal reported
        if progress is not None:
            for arch in missing[reported:done + failed]:
                progress(arch)
        reported = done + failed

    outcomes = request_archs(store, device_name, missing, target, settings=settings, wait_timeout_s=wait_timeout_s,
                             wait_progress=on_change)
    farm.raise_failed(outcomes)
    for arch, outcome in zip(missing, outcomes):
        rows[arch] = measurement_by_run_key(store, outcome.job.run_key)
    return rows
