"""Whole-architecture measurements: export, measure on a device, store (idempotently)."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from akd_tf.benchmark import BenchmarkResult, RunSettings
from akd_tf.plan import plan_network
from akd_tf.space import Arch
from latency_db.backends import backend_for
from latency_db.devices import get_device
from latency_db.schema import Device, Measurement, TFLiteModel, utcnow
from latency_db.store import Store

WHOLE_MODEL_SETTINGS = RunSettings()  # benchmark_model's defaults: 50 runs, at least 1 s


@dataclass(frozen=True)
class ModelTarget:
    """What a latency is for, besides the architecture: input, classes and quantization."""

    resolution: int
    classes: int
    channels: int = 3
    quantization: str = "none"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, self.channels)


def get_or_create_model(session: Session, arch: Arch, target: ModelTarget, sha256: str = "") -> TFLiteModel:
    identity = dict(space=arch.space.name, arch=arch.to_string(), resolution=target.resolution,
                    channels=target.channels, classes=target.classes, quantization=target.quantization)
    row = session.scalar(select(TFLiteModel).filter_by(**identity))
    if row is not None:
        if sha256:
            row.sha256 = sha256
        return row
    plan = plan_network(arch, target.input_shape, target.classes)
    try:
        with session.begin_nested():
            row = TFLiteModel(**identity, macs=plan.macs, params=plan.params, sha256=sha256)
            session.add(row)
    except IntegrityError:  # another process created it between our select and insert
        row = session.scalar(select(TFLiteModel).filter_by(**identity))
    return row


def record_measurement(session: Session, device: Device, model: TFLiteModel, result: BenchmarkResult, *,
                       run_key: str, started_at, finished_at, extra: dict | None = None) -> Measurement:
    """Insert one measurement; a ``run_key`` already stored returns the stored row (retries add nothing)."""
    existing = session.scalar(select(Measurement).where(Measurement.run_key == run_key))
    if existing is not None:
        return existing
    data = result.to_dict()
    row = Measurement(run_key=run_key, device_id=device.id, model_id=model.id, settings=data.pop("settings"),
                      raw_output=data.pop("raw_output"), started_at=started_at, finished_at=finished_at,
                      **{k: v for k, v in data.items() if k != "device"}, **(extra or {}))
    session.add(row)
    session.flush()
    return row


def latest_measurement(session: Session, device: Device, arch: Arch, target: ModelTarget) -> Measurement | None:
    return session.scalar(
        select(Measurement).join(TFLiteModel).where(
            Measurement.device_id == device.id, TFLiteModel.space == arch.space.name,
            TFLiteModel.arch == arch.to_string(), TFLiteModel.resolution == target.resolution,
            TFLiteModel.channels == target.channels, TFLiteModel.classes == target.classes,
            TFLiteModel.quantization == target.quantization).order_by(Measurement.id.desc()).limit(1))


def measure_arch(store: Store, device_name: str, arch: Arch, target: ModelTarget, *,
                 settings: RunSettings = WHOLE_MODEL_SETTINGS, run_key: str | None = None,
                 seed: int = 0) -> Measurement:
    """Export ``arch`` untrained, measure it on the device, store model and measurement; returns the row."""
    from akd_tf import export

    run_key = run_key or uuid.uuid4().hex
    with store.session() as session:
        device = get_device(session, device_name)
        stored = session.scalar(select(Measurement).where(Measurement.run_key == run_key))
        if stored is not None:
            return stored
    model = export.build_for_export(arch, target.input_shape, target.classes, seed=seed)
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = export.export_tflite(model, Path(tmp) / "model.tflite", target.quantization,
                                        min_int8_agreement=0.0, seed=seed)
        started = utcnow()
        result = backend_for(device)(device, exported.path, settings)
        finished = utcnow()
    with store.session() as session:
        device = get_device(session, device_name)
        row = get_or_create_model(session, arch, target, exported.sha256)
        return record_measurement(session, device, row, result, run_key=run_key, started_at=started,
                                  finished_at=finished)
