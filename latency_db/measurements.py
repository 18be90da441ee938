"""Rows of whole-model measurements: the model an architecture exports to and the measurements of it.

Row helpers only: nothing here exports or measures (that is :mod:`latency_db.measure`), so the job
queue can store a farm worker's result (:mod:`latency_db.job_results`) without importing the farm.
"""

from __future__ import annotations

from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from akd_tf.benchmark import BenchmarkResult
from akd_tf.canonical import canonical_arch
from akd_tf.errors import MissingData
from akd_tf.network_identity import NamedNetwork
from akd_tf.plan import plan_network
from akd_tf.space import Arch
from akd_tf.target import ModelTarget
from latency_db.schema import Device, Measurement, TFLiteModel
from latency_db.store import Store


def _space_identity(arch: Arch | NamedNetwork) -> dict:
    """The space and version a model row of ``arch`` is stored under (see :class:`latency_db.schema.TFLiteModel`)."""
    if isinstance(arch, NamedNetwork):
        return {"space": arch.space_name, "space_version": arch.version}
    return {"space": arch.space.name, "space_version": arch.space.version}


def get_or_create_model(session: Session, arch: Arch | NamedNetwork, target: ModelTarget,
                        sha256: str = "") -> TFLiteModel:
    """The model row of ``arch`` at ``target`` (created if new); a non-empty ``sha256`` is recorded on it.
    ``arch`` is an architecture of a search space or a :class:`~akd_tf.network_identity.NamedNetwork`
    (a carved student, a teacher's layer)."""
    identity = dict(**_space_identity(arch), arch=arch.to_string(), resolution=target.resolution,
                    channels=target.channels, classes=target.classes, quantization=target.quantization)
    row = session.scalar(select(TFLiteModel).filter_by(**identity))
    if row is not None:
        if sha256:
            row.sha256 = sha256
        return row
    if isinstance(arch, NamedNetwork):
        macs, params = arch.macs, arch.params
    else:
        plan = plan_network(arch, target.input_shape, target.classes)
        macs, params = plan.macs, plan.params
    try:
        with session.begin_nested():
            row = TFLiteModel(**identity, macs=macs, params=params, sha256=sha256)
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


def _of_network_query(device: Device, arch: Arch, target: ModelTarget):
    own, network = arch.to_string(), canonical_arch(arch).to_string()
    return select(Measurement).join(TFLiteModel).where(
        Measurement.device_id == device.id, TFLiteModel.space == arch.space.name,
        TFLiteModel.space_version == arch.space.version, TFLiteModel.arch.in_(sorted({own, network})),
        TFLiteModel.resolution == target.resolution, TFLiteModel.channels == target.channels,
        TFLiteModel.classes == target.classes, TFLiteModel.quantization == target.quantization,
    ).order_by(case((TFLiteModel.arch == own, 0), else_=1), Measurement.id.desc())


def taken_under(settings) -> tuple[int | None, str | None]:
    """The ``(num_threads, runtime)`` a measurement's stored run settings name: with its device and its model's
    quantization, what places it under one table version (:class:`latency_db.tables.TableIdentity`).
    ``(None, None)`` for settings that are not a mapping (rows from before settings were stored)."""
    settings = settings if isinstance(settings, dict) else {}
    return settings.get("num_threads"), settings.get("runtime")


def latest_measurement(session: Session, device: Device, arch: Arch, target: ModelTarget, *,
                       runtime: str, num_threads: int) -> Measurement | None:
    """The first measurement of ``arch``'s network (in the order of :func:`measurements_of_network`: its own
    tokens' newest first) at ``target`` on ``device`` taken by ``runtime`` with ``num_threads``, or None. A
    measurement by another runtime (before an upgrade) or with other threads belongs to another table version
    (:func:`taken_under`) and is never returned for this one."""
    wanted = (num_threads, runtime)
    return next((row for row in measurements_of_network(session, device, arch, target)
                 if taken_under(row.settings) == wanted), None)


def measurements_of_network(session: Session, device: Device, arch: Arch, target: ModelTarget):
    """Every measurement of ``arch``'s network at ``target`` on ``device`` (an iterator of rows): those taken
    under ``arch``'s own tokens, newest first, then those taken under its canonical form
    (:func:`akd_tf.canonical.canonical_arch`, as a search measures; the same ``.tflite``), newest first. An
    arch measured itself keeps its own measurement when another token list of its network is measured later."""
    return session.scalars(_of_network_query(device, arch, target))


def measurement_by_run_key(store: Store, run_key: str) -> Measurement:
    """The measurement stored under ``run_key``, detached; ValueError naming the key if there is none."""
    with store.session() as session:
        row = session.scalar(select(Measurement).where(Measurement.run_key == run_key))
        if row is None:
            raise MissingData(f"no measurement stored under run key {run_key!r}")
        session.expunge(row)
        return row
