"""Latency-table versions: which one a command reads or builds, and what each one holds.

A table version (:class:`latency_db.schema.LatencyTable`) is identified by its device and everything else that
changes a latency: the search space and its version (:attr:`akd_tf.space.SearchSpace.version`), the
quantization, the interpreter threads and the runtime. Its *current* version for a space and quantization is
the one whose space version is the space's as defined now and whose runtime is the device's now
(:func:`latency_db.devices.current_runtime`): after an interpreter upgrade or an edit of the space, no stored
version is current and ``build-lut`` starts a new one instead of mixing timings. :func:`current_table` finds
it; :func:`choose_table` is what commands call (the current version, or one chosen by id, else a one-line
error naming the versions that exist); :func:`ensure_table` is for paths that measure.

Entries are keyed by operator (:mod:`latency_db.keys`): the stem's key names the input
(``stem-input:32x32x3-...``) and the head's the classes (``head-...-classes:10``), so a version's shapes are
read from its keys (:func:`table_shapes`). :func:`resolve_target` fills what a user left out from the only
shape of the version a command reads, so a table built at 32x32 with 10 classes is queried, calibrated and
measured there without retyping it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timezone

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager

from akd_tf.benchmark import RunSettings
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.space import SearchSpace, get_space
from akd_tf.target import DEFAULT_TARGET, ModelTarget
from latency_db.devices import current_runtime, device_label, lookup_device, resolve_name, this_host_runtime
from latency_db.measurements import taken_under
from latency_db.schema import Calibration, Device, LatencyTable, LutEntry, Measurement, TFLiteModel, as_utc, utcnow
from latency_db.store import Store

THREADS = RunSettings().num_threads  # the interpreter threads tables are built and read with unless told otherwise
LEGACY_SPACE, LEGACY_VERSION = "unknown", "legacy"  # what migration 0009 records for tables from before versions

_STEM = re.compile(r"^stem-input:(\d+)x(\d+)x(\d+)-")
_HEAD = re.compile(r"-classes:(\d+)$")


@dataclass(frozen=True)
class TableIdentity:
    """What a table version's latencies depend on besides its device."""

    space: str
    space_version: str
    quantization: str
    threads: int
    runtime: str

    @classmethod
    def of(cls, table: LatencyTable) -> "TableIdentity":
        return cls(table.space, table.space_version, table.quantization, table.threads, table.runtime)

    @classmethod
    def current(cls, device: Device, space: SearchSpace, quantization: str, threads: int = THREADS,
                runtime: str | None = None) -> "TableIdentity":
        """The identity a table of ``device`` measured now would have (``runtime``: the device's current one)."""
        return cls(space.name, space.version, quantization, threads,
                   current_runtime(device) if runtime is None else runtime)

    def describe(self) -> str:
        """``lut-test@690280ca, ai-edge-litert 2.3.0, 1 thread, none``."""
        return (f"{self.space}@{self.space_version}, {self.runtime}, {self.threads} "
                f"thread{'' if self.threads == 1 else 's'}, {self.quantization}")


def _identity_filter(identity: TableIdentity):
    return (LatencyTable.space == identity.space, LatencyTable.space_version == identity.space_version,
            LatencyTable.quantization == identity.quantization, LatencyTable.threads == identity.threads,
            LatencyTable.runtime == identity.runtime)


def _find(session: Session, device: Device, identity: TableIdentity) -> LatencyTable | None:
    """The version of ``device``'s table with ``identity`` (unique per device), or None."""
    return session.scalar(select(LatencyTable).where(LatencyTable.device_id == device.id,
                                                     *_identity_filter(identity)))


def current_table(session: Session, device: Device, space: SearchSpace, quantization: str, *,
                  threads: int = THREADS, runtime: str | None = None) -> LatencyTable | None:
    """The version of ``device``'s table for ``space`` as defined now, ``quantization``, ``threads`` and the
    device's current runtime (or ``runtime``), or None when none is stored. Never writes. (The identity is
    unique per device, so there is at most one.)"""
    return _find(session, device, TableIdentity.current(device, space, quantization, threads, runtime))


def _current(session: Session, device: Device | None, space: SearchSpace, quantization: str,
             threads: int) -> tuple[TableIdentity, LatencyTable | None]:
    if device is None:  # this host before its first measurement
        return TableIdentity(space.name, space.version, quantization, threads, this_host_runtime()), None
    identity = TableIdentity.current(device, space, quantization, threads)
    return identity, _find(session, device, identity)


def current_version(session: Session, device_name: str, space: SearchSpace, quantization: str,
                    threads: int = THREADS) -> tuple[TableIdentity, LatencyTable | None]:
    """(the identity a version of ``device_name``'s table for ``space`` measured now has, that version or None
    when it is not stored yet): :func:`current_table` by name, also before this host measured anything."""
    return _current(session, lookup_device(session, device_name), space, quantization, threads)


def ensure_table(session: Session, device: Device, identity: TableIdentity) -> LatencyTable:
    """The version of ``device``'s table with ``identity``, created if new (for paths that measure into it)."""
    table = _find(session, device, identity)
    if table is not None:
        return table
    try:
        with session.begin_nested():
            table = LatencyTable(device_id=device.id, created_at=utcnow(), space=identity.space,
                                 space_version=identity.space_version, quantization=identity.quantization,
                                 threads=identity.threads, runtime=identity.runtime)
            session.add(table)
    except IntegrityError:  # another builder created it between our select and insert
        table = _find(session, device, identity)
    return table


def build_command(device: str, space: SearchSpace, target: ModelTarget) -> str:
    return (f"akd-tf latency build-lut --device {device} --space {space.name} --resolution {target.resolution} "
            f"--channels {target.channels} --classes {target.classes} --quantize {target.quantization}")


def _entry_counts(session: Session, table_ids) -> dict[int, int]:
    return dict(session.execute(select(LutEntry.table_id, func.count()).where(LutEntry.table_id.in_(table_ids))
                                .group_by(LutEntry.table_id)).all())


def _measured_counts(session: Session, tables: list[LatencyTable]) -> dict[int, int]:
    """For each table, how many architectures of its space and version have a whole-model measurement on its device
    with its runtime, threads and quantization (any input shape)."""
    rows = session.execute(select(Measurement.device_id, Measurement.model_id, Measurement.settings,
                                  TFLiteModel.space, TFLiteModel.space_version, TFLiteModel.quantization)
                           .join(TFLiteModel).where(Measurement.device_id.in_({t.device_id for t in tables})))
    archs: dict[tuple, set[int]] = {}
    for device_id, model_id, settings, space, version, quantization in rows:
        archs.setdefault((device_id, space, version, quantization, *taken_under(settings)), set()).add(model_id)
    return {t.id: len(archs.get((t.device_id, t.space, t.space_version, t.quantization, t.threads, t.runtime), ()))
            for t in tables}


def _listed(session: Session, tables: list[LatencyTable]) -> str:
    """The versions for a message: ``#1 lut-test@690280ca, ai-edge-litert 2.3.0, 1 thread, none (8 entries);
    #2 ...``, or ``none``."""
    counts = _entry_counts(session, [t.id for t in tables])
    return "; ".join(f"#{t.id} {TableIdentity.of(t).describe()} ({counts.get(t.id, 0)} entries)"
                     for t in tables) or "none"


def no_such_table(session: Session, device_name: str, tables: list[LatencyTable], table_id: int) -> MissingData:
    """The error for a ``table_id`` that is none of the device's ``tables``, naming those."""
    return MissingData(f"device {device_label(device_name)} has no latency table #{table_id}; its tables: "
                       f"{_listed(session, tables)}")


def device_tables(session: Session, device: Device) -> list[LatencyTable]:
    """Every version of ``device``'s table, oldest first."""
    return list(session.scalars(select(LatencyTable).where(LatencyTable.device_id == device.id)
                                .order_by(LatencyTable.id)))


def choose_table(session: Session, device_name: str, space: SearchSpace, target: ModelTarget, *,
                 table_id: int | None = None, threads: int = THREADS) -> LatencyTable:
    """The table version a command reads: ``table_id`` if given (it must be the device's, of
    ``target.quantization`` and, unless a legacy table of unknown space, of ``space``), else the current
    version (:func:`current_table`). Never writes. A version that does not exist is a one-line MissingData
    naming the device's versions and how to build or choose one."""
    device = lookup_device(session, device_name)
    tables = [] if device is None else device_tables(session, device)
    label = device_label(device_name)
    if table_id is None:
        wanted, table = _current(session, device, space, target.quantization, threads)
        if table is None:
            build = f"build it with: {build_command(device_name, space, target)}"
            raise MissingData(f"device {label} has no latency table for {wanted.describe()}; "
                              + (f"its tables: {_listed(session, tables)}; choose one with --table ID or {build}"
                                 if tables else f"it has none yet; {build}"))
        return table
    table = next((t for t in tables if t.id == table_id), None)
    if table is None:
        raise no_such_table(session, device_name, tables, table_id)
    if table.space not in (space.name, LEGACY_SPACE):
        raise InvalidInput(f"latency table #{table_id} is for space {table.space!r}, not {space.name!r}")
    if table.quantization != target.quantization:
        raise InvalidInput(f"latency table #{table_id} holds {table.quantization} latencies, not "
                           f"{target.quantization}")
    return table


@dataclass(frozen=True)
class TableShapes:
    """The input sides, channels and class counts of one table version's entries."""

    quantization: str
    inputs: tuple[tuple[int, int], ...]  # (resolution, channels) of each stem entry
    classes: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.shape()} ({self.quantization})"

    def shape(self) -> str:
        """``32x32x3 with 4 or 10 classes``; ``32x32x3, no head`` or ``no stem with 10 classes`` while a build is
        under way."""
        inputs = " or ".join(f"{r}x{r}x{c}" for r, c in self.inputs) or "no stem"
        classes = " or ".join(map(str, self.classes))
        return f"{inputs} with {classes} classes" if classes else f"{inputs}, no head"


def table_shapes(session: Session, tables: list[LatencyTable]) -> dict[int, TableShapes]:
    """Each table's shapes (by table id), read from its stem and head keys."""
    inputs: dict[int, set[tuple[int, int]]] = {t.id: set() for t in tables}
    classes: dict[int, set[int]] = {t.id: set() for t in tables}
    rows = session.execute(select(LutEntry.table_id, LutEntry.key).where(
        LutEntry.table_id.in_(list(inputs)), or_(LutEntry.key.like("stem-%"), LutEntry.key.like("head-%")))).all()
    for table_id, key in rows:
        stem, head = _STEM.match(key), _HEAD.search(key)
        if stem and stem.group(1) == stem.group(2):
            inputs[table_id].add((int(stem.group(1)), int(stem.group(3))))
        elif head and key.startswith("head-"):
            classes[table_id].add(int(head.group(1)))
    return {t.id: TableShapes(t.quantization, tuple(sorted(inputs[t.id])), tuple(sorted(classes[t.id])))
            for t in tables}


def _read_tables(session: Session, device_name: str, space: SearchSpace, table_id: int | None,
                 quantization: str | None) -> list[LatencyTable]:
    """The versions whose shapes may fill a command's target: the chosen one, else the device's current ones."""
    device = lookup_device(session, device_name)
    if device is None:
        return []
    if table_id is not None:
        return [t for t in device_tables(session, device) if t.id == table_id]
    runtime = current_runtime(device)
    return [t for t in device_tables(session, device) if _current_for(t, space, runtime) and t.threads == THREADS
            and (quantization is None or t.quantization == quantization)]


def resolve_target(store: Store, device_name: str, space: SearchSpace, *, table_id: int | None = None,
                   resolution: int | None = None, channels: int | None = None, classes: int | None = None,
                   quantization: str | None = None) -> ModelTarget:
    """The target a command works at: what was given, the rest from the only shape of the table version it reads
    (``table_id``, else the device's current versions for ``space``), also when what was given is a shape no
    version holds; :data:`akd_tf.target.DEFAULT_TARGET`'s values when no version fits. Several shapes that fit is
    an ``InvalidInput`` listing them and the options that choose one. Never writes."""
    given = {"resolution": resolution, "channels": channels, "classes": classes, "quantization": quantization}
    if all(value is not None for value in given.values()):
        return ModelTarget(**given)
    with store.session() as session:
        tables = _read_tables(session, device_name, space, table_id, quantization)
        shapes = list(table_shapes(session, tables).values())
    fitting = [s for s in shapes if quantization is None or s.quantization == quantization]
    inputs = {i for s in fitting for i in s.inputs
              if (resolution is None or i[0] == resolution) and (channels is None or i[1] == channels)}
    class_counts = {c for s in fitting for c in s.classes if classes is None or c == classes}
    # A shape or class count the tables never measured (a kernel model prices it): what was typed, the rest
    # still from the tables, so `--resolution 96` on a 32x32 table with 10 classes keeps its 10 classes.
    if not inputs:
        inputs = {(r if resolution is None else resolution, c if channels is None else channels)
                  for s in fitting for r, c in s.inputs}
    if not class_counts and classes is not None:
        class_counts = {classes}
    if not fitting or not inputs or not class_counts:
        return ModelTarget(**{name: value if value is not None else getattr(DEFAULT_TARGET, name)
                              for name, value in given.items()})
    quantizations = ({s.quantization for s in fitting if set(s.inputs) & inputs}
                     or {s.quantization for s in fitting})
    if len(inputs) > 1 or len(class_counts) > 1 or len(quantizations) > 1:
        listed = "; ".join(s.describe() for s in fitting)
        raise InvalidInput(f"device {device_name!r} has latency tables for {listed}: choose one with "
                           f"--resolution, --channels, --classes and --quantize")
    (table_resolution, table_channels), = inputs
    return ModelTarget(resolution=table_resolution, channels=table_channels, classes=class_counts.pop(),
                       quantization=quantizations.pop())


def table_versions(store: Store, device_name: str | None = None) -> list[dict]:
    """One plain dict per table version (of ``device_name``, else of every device), by device then id, for
    ``akd-tf latency list``: its identity, shapes, entry count, how many architectures were measured whole
    under its runtime, threads and quantization (``measured``), its calibration count, when it was begun,
    and whether it is its device's current version for its space, quantization and threads. Never writes."""
    with store.session() as session:
        query = (select(LatencyTable).join(Device).options(contains_eager(LatencyTable.device))
                 .order_by(Device.name, LatencyTable.id))
        if device_name is not None:
            query = query.where(Device.name == resolve_name(device_name))
        tables = list(session.scalars(query))
        shapes = table_shapes(session, tables)
        entries = _entry_counts(session, [t.id for t in tables])
        measured = _measured_counts(session, tables)
        calibrations = dict(session.execute(select(Calibration.table_id, func.count()).group_by(
            Calibration.table_id)).all())
        return [{"table": t.id, "device": t.device.name, "space": f"{t.space}@{t.space_version}",
                 "runtime": t.runtime, "threads": t.threads, "quantization": t.quantization,
                 "shapes": shapes[t.id].shape(), "entries": entries.get(t.id, 0), "measured": measured[t.id],
                 "calibrations": calibrations.get(t.id, 0),
                 "built": f"{as_utc(t.created_at).astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC",
                 "current": _is_current(t)} for t in tables]


def _current_for(table: LatencyTable, space: SearchSpace, runtime: str) -> bool:
    """Whether ``table`` is of ``space`` as defined now and of ``runtime``."""
    return (table.space, table.space_version, table.runtime) == (space.name, space.version, runtime)


def _is_current(table: LatencyTable) -> bool:
    """Whether ``table`` is what :func:`current_table` finds for its device, space, quantization and threads."""
    try:
        space = get_space(table.space)
    except InvalidInput:  # a legacy table, or a space this process has not registered
        return False
    return _current_for(table, space, current_runtime(table.device))
