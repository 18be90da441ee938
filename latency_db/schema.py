"""SQLAlchemy 2 models of the latency database.

Constraints live in the schema: natural keys are unique so repeated imports
and retried measurements add nothing (``measurements.run_key`` identifies one
measurement request; ``latency_tables`` are unique per device and everything
else that changes a latency; ``lut_entries`` are unique per table and operator
key).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        Text, UniqueConstraint, select)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship
from sqlalchemy.sql.expression import true
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; a naive one is taken to be UTC already (what SQLite held before
    :class:`UTCDateTime`, and what old exported tables hold)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# SQLAlchemy's SQLite format with the zone written out; a row stored before it, without "+00:00", is UTC too
# and sorts with these (the same prefix), so comparisons in SQL stay right across old and new rows.
SQLITE_UTC_FORMAT = ("%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
                     "+00:00")


class UTCDateTime(TypeDecorator):
    """A timestamp stored and read as aware UTC on every database: every DateTime column of the schema.

    PostgreSQL stores ``timestamptz`` and answers in the session's time zone; SQLite has no date type and
    SQLAlchemy's ``DateTime(timezone=True)`` drops the zone there, so it is stored as text ending in
    ``+00:00`` (``2026-11-23 10:00:00.000000+00:00``). Either way values come back as aware UTC datetimes;
    a naive value given is taken as UTC (:func:`as_utc`). No migration: the columns' SQL types are unchanged.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sqlite.DATETIME(timezone=True, storage_format=SQLITE_UTC_FORMAT))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    pass


# A count that can pass 2**31 (a model's MACs, a file's bytes): BIGINT on PostgreSQL; on SQLite, where any
# INTEGER column holds 64-bit values, INTEGER (migration 0015 changes nothing there).
WideInteger = BigInteger().with_variant(Integer(), "sqlite")


class TimedRunStats:
    """Statistics of timed runs (microseconds) that every latency row keeps, as in BenchmarkResult."""

    median_us: Mapped[float] = mapped_column(Float)
    mean_us: Mapped[float] = mapped_column(Float)
    std_us: Mapped[float] = mapped_column(Float)
    min_us: Mapped[float] = mapped_column(Float)
    p90_us: Mapped[float | None] = mapped_column(Float)  # None where the backend reports no percentiles
    count: Mapped[int] = mapped_column(Integer)  # timed runs behind the statistics
    repeat_spread: Mapped[float | None] = mapped_column(Float)  # max/min - 1 of the repeats' minimums

    @staticmethod
    def of(result) -> dict:
        """These columns' values from an :class:`akd_tf.benchmark.BenchmarkResult`."""
        return {name: getattr(result, name)
                for name in ("median_us", "mean_us", "std_us", "min_us", "p90_us", "count", "repeat_spread")}


class Device(Base):
    """A measuring device: a host's CPU (``local@HOST``, see :mod:`latency_db.devices`) or a phone.

    ``status`` is "online" | "offline" | "unhealthy" ("imported" for devices known only from an imported
    table). A farm worker holds at most one phone at a time through ``lease_holder``/``lease_expires_at``;
    ``consecutive_failures`` counts transport failures since the last successful run.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # "local" | "adb"
    serial: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(256))
    soc: Mapped[str | None] = mapped_column(String(256))
    abi: Mapped[str | None] = mapped_column(String(64))
    os_version: Mapped[str | None] = mapped_column(String(64))
    core: Mapped[int | None] = mapped_column(Integer)
    governor: Mapped[str | None] = mapped_column(String(64))
    runtime: Mapped[str | None] = mapped_column(String(256))  # interpreter or benchmark-binary version
    status: Mapped[str] = mapped_column(String(32), default="online")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    address: Mapped[str | None] = mapped_column(String(256))  # HOST:PORT or USB serial used to connect
    properties: Mapped[dict | None] = mapped_column(JSON)  # probed facts
    benchmark_binary: Mapped[str | None] = mapped_column(String(512))  # path of benchmark_model on the phone
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_holder: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TFLiteModel(Base):
    """A whole architecture converted at one input shape, class count and quantization.

    ``space_version`` is the definition of the space that built it (:attr:`akd_tf.space.SearchSpace.version`;
    an edited space builds other networks from the same strings), ``''`` for a named network, whose key names
    the network itself (:class:`akd_tf.network_identity.NamedNetwork`), and ``legacy`` for rows stored before
    versions were recorded (migration 0016), which no lookup of a space's current version finds.
    """

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("space", "space_version", "arch", "resolution", "channels", "classes",
                                       "quantization", name="uq_models_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    space: Mapped[str] = mapped_column(String(64))
    space_version: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(1024))
    resolution: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    classes: Mapped[int] = mapped_column(Integer)
    quantization: Mapped[str] = mapped_column(String(16))
    macs: Mapped[int] = mapped_column(WideInteger)  # ResNet50 at 224x224 has 4.1e9: past a 32-bit INTEGER
    params: Mapped[int] = mapped_column(WideInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class Measurement(TimedRunStats, Base):
    """One benchmark run of a model on a device: every statistic of :class:`akd_tf.benchmark.BenchmarkResult`."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    settings: Mapped[dict] = mapped_column(JSON)
    init_us: Mapped[float] = mapped_column(Float)
    first_inference_us: Mapped[float] = mapped_column(Float)
    warmup_mean_us: Mapped[float | None] = mapped_column(Float)
    max_us: Mapped[float] = mapped_column(Float)
    raw_output: Mapped[str] = mapped_column(Text, default="")
    thermal_before: Mapped[dict | None] = mapped_column(JSON)
    thermal_after: Mapped[dict | None] = mapped_column(JSON)
    battery_before: Mapped[dict | None] = mapped_column(JSON)
    battery_after: Mapped[dict | None] = mapped_column(JSON)
    # the measuring core's cpufreq state on a phone (devicefarm.probe.parse_cpufreq) and fixed-performance mode
    cpu_before: Mapped[dict | None] = mapped_column(JSON)
    cpu_after: Mapped[dict | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())

    device: Mapped[Device] = relationship()
    model: Mapped[TFLiteModel] = relationship()


class LatencyTable(Base):
    """One version of a device's lookup table: its entries were all measured with the same runtime, threads and
    quantization, for one definition of one search space (see :mod:`latency_db.tables`).

    ``runtime`` is the interpreter's label on a host (``ai-edge-litert 2.3.0``) or the phone's benchmark binary
    (``Device.runtime``); ``space_version`` is :attr:`akd_tf.space.SearchSpace.version`. Tables migrated from
    before versions existed have space ``unknown`` and version ``legacy``. A change of any of these makes a
    new version: entries of different versions never mix.
    """

    __tablename__ = "latency_tables"
    __table_args__ = (UniqueConstraint("device_id", "space", "space_version", "quantization", "threads", "runtime",
                                       name="uq_latency_tables_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(64))
    space_version: Mapped[str] = mapped_column(String(64))
    quantization: Mapped[str] = mapped_column(String(16))
    threads: Mapped[int] = mapped_column(Integer)
    runtime: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    device: Mapped[Device] = relationship()


class LutEntry(TimedRunStats, Base):
    """Latency of one operator (latency-table key) in one table version."""

    __tablename__ = "lut_entries"
    __table_args__ = (UniqueConstraint("table_id", "key", name="uq_lut_entries_table_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("latency_tables.id", name="fk_lut_entries_table_id",
                                                     ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))
    settings: Mapped[dict] = mapped_column(JSON)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    table: Mapped[LatencyTable] = relationship()


class Calibration(Base):
    """A correction of one table version's sum for one space and input shape, fitted to whole-model
    measurements (a predictor version). The device and the quantization are the table's.

    ``method`` is "linear" (``latency_ms = scale * lut_sum_ms + ms_per_weight_mb * weight_mb + offset_ms``:
    the weight term prices what per-operator micro-models cannot see, a whole model's weights not fitting
    in cache) or "lightgbm" (``model`` holds LightGBM's text model, ``library`` its version); see
    :mod:`latency_db.corrections`. ``region`` is the feature range it was fitted on. The accuracy columns
    are on ``n_holdout`` random archs never used for fitting. ``accepted`` is false when the correction
    predicted them worse (RMSPE) than the raw sum (``raw_rmspe``) or than the other method fitted with it:
    it is kept as a record, and the predictor does not use it. ``measuring_s`` is the wall time the
    calibration spent exporting and measuring.
    """

    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("latency_tables.id", name="fk_calibrations_table_id",
                                                     ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(64))
    resolution: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    classes: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(16), default="linear", server_default="linear")
    scale: Mapped[float | None] = mapped_column(Float)
    offset_ms: Mapped[float | None] = mapped_column(Float)
    ms_per_weight_mb: Mapped[float | None] = mapped_column(Float)
    model: Mapped[str | None] = mapped_column(Text)
    library: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[dict | None] = mapped_column(JSON)
    n_fit: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    within_5_pct: Mapped[float] = mapped_column(Float)
    within_10_pct: Mapped[float] = mapped_column(Float)
    rmspe: Mapped[float] = mapped_column(Float)
    kendall_tau: Mapped[float] = mapped_column(Float)
    spearman_rho: Mapped[float | None] = mapped_column(Float)
    raw_rmspe: Mapped[float | None] = mapped_column(Float)  # the raw LUT sum's RMSPE on the same held-out archs
    accepted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    measuring_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    table: Mapped[LatencyTable] = relationship()


class KernelModel(Base):
    """A kernel-level model of one table version: fitted on its measured entries, it prices an operator the
    table never measured (another input resolution or class count) from the operator's configuration
    (:mod:`latency_db.kernel_models`).

    ``model`` holds the model as data (coefficients and LightGBM's text format, never code), written by
    ``library``; ``space`` is the search space whose operators the entries were read as; ``shapes`` the
    input shapes and class counts of the ``n_entries`` entries fitted; ``region`` each operator kind's
    feature ranges (an operator outside them is flagged). The accuracy columns are per entry, on
    ``n_holdout`` entries of the table's largest input resolution priced by a model fitted without them
    (``holdout`` says which); they are null when the table holds one resolution only.
    """

    __tablename__ = "kernel_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("latency_tables.id", name="fk_kernel_models_table_id",
                                                     ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))
    library: Mapped[str] = mapped_column(String(64))
    model: Mapped[dict] = mapped_column(JSON)
    region: Mapped[dict] = mapped_column(JSON)
    shapes: Mapped[str] = mapped_column(String(256))
    n_entries: Mapped[int] = mapped_column(Integer)
    holdout: Mapped[str | None] = mapped_column(String(256))
    n_holdout: Mapped[int | None] = mapped_column(Integer)
    within_10_pct: Mapped[float | None] = mapped_column(Float)
    rmspe: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    table: Mapped[LatencyTable] = relationship()


class JobModel(Base):
    """The bytes of one ``.tflite`` that farm jobs measure, stored once however many jobs name them.

    ``sha256`` (hex) identifies the content. ``tflite`` holds the bytes while a queued, leased or failed job
    names them (a failed job's model stays inspectable); it is set to NULL when the last such job is done,
    and stored again when the same model is submitted again. The row itself stays as the record that
    finished jobs point to. Jobs never load these bytes with the job row: a worker reads them once, by
    hash, after leasing (:func:`latency_db.job_models.model_bytes`).
    """

    __tablename__ = "job_models"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(WideInteger)
    tflite: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FarmPoll(Base):
    """When a farm worker last asked for work for a phone, and which worker: how a requester waiting on the
    farm tells a phone that nobody serves from one that is busy (see :mod:`latency_db.farm_polls`)."""

    __tablename__ = "farm_polls"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    worker: Mapped[str] = mapped_column(String(256))
    polled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Job(Base):
    """A measurement request waiting for, running on, or finished by a farm worker (see :mod:`latency_db.queue`).

    ``device_id`` is the requested device, whose tables receive the result; any online device whose model
    equals ``pool`` may measure it. ``state`` is "queued" | "leased" | "done" | "failed". ``payload`` is
    ``{"model_id": int}`` for kind "model" and ``{"key": str, "table_id": int}`` (a table version of the
    requested device) for kind "lut";
    ``settings`` is a :class:`akd_tf.benchmark.RunSettings` as a dict; ``model_sha256`` names the ``.tflite``
    to measure (its bytes live in :class:`JobModel`, so updating a job never rewrites them). ``attempts``
    counts failed runs.
    ``result`` is :meth:`akd_tf.benchmark.BenchmarkResult.to_dict` without ``raw_output`` (kept in its
    own column), non-finite numbers stored as null.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_pool_state", "pool", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    pool: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    payload: Mapped[dict] = mapped_column(JSON)
    settings: Mapped[dict] = mapped_column(JSON)
    model_sha256: Mapped[str] = mapped_column(ForeignKey("job_models.sha256", name="fk_jobs_model_sha256"),
                                              index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    lease_holder: Mapped[str | None] = mapped_column(String(256))
    leased_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSON)
    measurement_id: Mapped[int | None] = mapped_column(ForeignKey("measurements.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    device: Mapped[Device] = relationship(foreign_keys=[device_id])
    leased_device: Mapped[Device | None] = relationship(foreign_keys=[leased_device_id])
    last_device: Mapped[Device | None] = relationship(foreign_keys=[last_device_id])
    measurement: Mapped[Measurement | None] = relationship()


class SearchRun(Base):
    """One architecture search (see :mod:`search.runs`): its settings, budget, progress and controller state.

    ``config`` holds every setting that decides what a trial means (space, device, target shape, data,
    teacher, proxy training, reward); a resumed run must agree with it. ``controller_step`` is the step
    whose trials are in ``trials`` and not yet learnt from; ``controller_state`` is the controller after
    learning from every earlier step (``None`` before the first update). Both change in the same
    transaction that adds the next step's trials, so a crash never separates them.
    ``status`` is "running" | "finished".
    """

    __tablename__ = "search_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    space: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(128))  # a device name, kept when the device row is removed
    controller: Mapped[str] = mapped_column(String(32))
    reward: Mapped[str] = mapped_column(String(32))
    reward_source: Mapped[str] = mapped_column(String(16))  # "kd" | "label"
    target_ms: Mapped[float | None] = mapped_column(Float)
    target_mmacs: Mapped[float | None] = mapped_column(Float)
    trials_budget: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict] = mapped_column(JSON)
    controller_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    controller_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    controller_stats: Mapped[list | None] = mapped_column(JSON)  # one dict per finished update
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Trial(Base):
    """One child of a search: its architecture, latency (and where it came from), proxy accuracy and reward.

    ``status`` is "pending" (proposed, not yet evaluated, being retried or interrupted), "done", "failed"
    (the architecture's fault, such as a diverged training: ``error`` says why and ``reward`` is the defined
    reward of a failed child, which the controller learns from) or "excluded" (an infrastructure failure
    on each of its ``attempts``: no reward, never learnt from; see :mod:`search.failures`).
    ``attempt_failures`` lists the failed attempts, ``{"attempt", "kind", "reason"}`` each (also those of a
    child done after a retry). ``latency_source`` is "measured"
    (a whole-model measurement on the run's device, ``measurement_id``) or "predicted" (the latency
    table). ``number`` counts trials within the run from 0; ``step`` is the controller step that proposed
    it. ``network`` is the canonical string of the child's canonical form (:func:`akd_tf.canonical.network_key`):
    equal for two children that build the same network. A child whose network was evaluated before, in this
    run or one whose evaluations it shares, is "done" without training: ``reused_from`` is the trial it took
    its accuracy, latency and training summary from (always a trial that was evaluated itself), ``original``
    that trial, and ``run_name`` the name of a trial's run.
    """

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("run_id", "number", name="uq_trials_run_number"),
                      Index("ix_trials_run_status", "run_id", "status"), Index("ix_trials_network", "network"))

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("search_runs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    arch: Mapped[str] = mapped_column(String(1024))
    tokens: Mapped[list] = mapped_column(JSON)
    log_prob: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    mmacs: Mapped[float] = mapped_column(Float)
    params: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    latency_source: Mapped[str | None] = mapped_column(String(16))
    measurement_id: Mapped[int | None] = mapped_column(ForeignKey("measurements.id", ondelete="SET NULL"))
    latency_seconds: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    train: Mapped[dict | None] = mapped_column(JSON)  # the proxy training's summary (top-5, loss, speed, teacher)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    reward: Mapped[float | None] = mapped_column(Float)
    reward_terms: Mapped[dict | None] = mapped_column(JSON)
    worker: Mapped[str | None] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    attempt_failures: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    network: Mapped[str | None] = mapped_column(String(1024))
    reused_from: Mapped[int | None] = mapped_column(ForeignKey("trials.id", name="fk_trials_reused_from",
                                                               ondelete="SET NULL"))

    run: Mapped[SearchRun] = relationship()
    original: Mapped[Trial | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)
    run_name: Mapped[str] = column_property(
        select(SearchRun.name).where(SearchRun.id == run_id).correlate_except(SearchRun).scalar_subquery())
