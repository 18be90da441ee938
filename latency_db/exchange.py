"""Sharing lookup tables between teams: export and import as CSV or JSON, table versions included.

A file carries each table version's identity (space and space version, quantization, threads, runtime; see
:mod:`latency_db.tables`) with its entries: JSON as one object per version, CSV as five identity columns on
every row. Import puts each version's entries into the target device's version of the same identity (made if
new), so a table never mixes with one measured otherwise. Files of format version 1 (before table versions)
named no runtime, threads or space and are refused.

Import runs in one transaction: a corrupt file writes nothing, and entries already present (same table
version and key) are left as they are, so importing the same file twice adds nothing the second time.
``p90_us`` may be absent (Android's benchmark_model reports no percentiles): CSV writes an empty field and
JSON ``null``, and both read back as ``None``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from akd_tf.errors import InvalidInput
from akd_tf.target import check_quantization
from latency_db.devices import get_device, host_device, host_device_name, is_host_name, resolve_name
from latency_db.schema import Device, LutEntry
from latency_db.store import Store
from latency_db.tables import TableIdentity, device_tables, ensure_table, no_such_table

FORMATS = ("csv", "json")
FORMAT_NAME = "akd-tf-lut"
FORMAT_VERSION = 2
TABLE_FIELDS = ("space", "space_version", "quantization", "threads", "runtime")
ENTRY_FIELDS = ("key", "median_us", "mean_us", "std_us", "min_us", "p90_us", "count", "measured_at")
FLOAT_FIELDS = ("median_us", "mean_us", "std_us", "min_us", "p90_us")
OPTIONAL_FIELDS = ("p90_us",)  # empty (CSV) or null (JSON) means None
DEVICE_FIELDS = ("model", "soc", "abi", "os_version", "runtime")


def export_table(store: Store, device_name: str, fmt: str, table_id: int | None = None) -> str:
    """The device's table versions (only ``table_id`` when given) as CSV or JSON text. Reads only."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with store.session() as session:
        device = get_device(session, device_name)
        tables = device_tables(session, device)
        if table_id is not None:
            chosen = [t for t in tables if t.id == table_id]
            if not chosen:
                raise no_such_table(session, device_name, tables, table_id)
            tables = chosen
        versions = []
        for table in tables:
            entries = session.scalars(select(LutEntry).where(LutEntry.table_id == table.id)
                                      .order_by(LutEntry.key)).all()
            versions.append((TableIdentity.of(table), [{**{f: getattr(e, f) for f in ENTRY_FIELDS},
                                                        "measured_at": e.measured_at.isoformat()} for e in entries]))
        device_info = {c: getattr(device, c) for c in ("name", "kind", *DEVICE_FIELDS)}
    if fmt == "json":
        return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "device": device_info,
                           "tables": [{**{f: getattr(identity, f) for f in TABLE_FIELDS}, "entries": rows}
                                      for identity, rows in versions]}, indent=1)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_FIELDS + ENTRY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for identity, rows in versions:
        writer.writerows({**{f: getattr(identity, f) for f in TABLE_FIELDS}, **row} for row in rows)
    return out.getvalue()


def _parse_identity(raw: dict, where: str) -> TableIdentity:
    missing = [f for f in TABLE_FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise InvalidInput(f"{where}: missing table field(s) {', '.join(missing)}")
    try:
        threads = int(raw["threads"])
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: threads must be an int >= 1, got {raw['threads']!r}") from None
    if threads < 1:
        raise InvalidInput(f"{where}: threads must be an int >= 1, got {raw['threads']!r}")
    quantization = str(raw["quantization"])
    try:
        check_quantization(quantization)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return TableIdentity(str(raw["space"]), str(raw["space_version"]), quantization, threads, str(raw["runtime"]))


def _parse_entry(raw: dict, where: str) -> dict:
    missing = [f for f in ENTRY_FIELDS if f not in raw or (raw[f] in (None, "") and f not in OPTIONAL_FIELDS)]
    if missing:
        raise InvalidInput(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        entry = {"key": str(raw["key"]), "count": int(raw["count"]),
                 "measured_at": datetime.fromisoformat(str(raw["measured_at"])),
                 **{f: None if raw[f] in (None, "") else float(raw[f]) for f in FLOAT_FIELDS}}
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    if any(entry[f] is not None and (not math.isfinite(entry[f]) or entry[f] < 0) for f in FLOAT_FIELDS) \
            or entry["count"] < 1:
        raise InvalidInput(f"{where}: latencies must be finite and >= 0 and count >= 1")
    return entry


def _read_json(path: Path, text: str) -> tuple[dict | None, dict[TableIdentity, list[dict]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise InvalidInput(f"{path}: not an {FORMAT_NAME} file (missing \"format\": \"{FORMAT_NAME}\")")
    if doc.get("version") == 1:
        raise InvalidInput(f"{path}: version 1 files name no table version (runtime, threads, space version), so "
                           f"their entries cannot be told apart from others; export them again with this akd-tf")
    if doc.get("version") != FORMAT_VERSION:
        raise InvalidInput(f"{path}: unsupported version {doc.get('version')!r}, expected {FORMAT_VERSION}")
    raw_tables = doc.get("tables")
    if not isinstance(raw_tables, list):
        raise InvalidInput(f"{path}: \"tables\" must be a list")
    versions: dict[TableIdentity, list[dict]] = {}
    for t, raw_table in enumerate(raw_tables, start=1):
        raw_table = raw_table if isinstance(raw_table, dict) else {}
        raw_entries = raw_table.get("entries")
        if not isinstance(raw_entries, list):
            raise InvalidInput(f"{path}: table {t}: \"entries\" must be a list")
        identity = _parse_identity(raw_table, f"{path}: table {t}")
        versions.setdefault(identity, []).extend(
            _parse_entry(r if isinstance(r, dict) else {}, f"{path}: table {t} entry {i}")
            for i, r in enumerate(raw_entries, start=1))
    return doc.get("device"), versions


def read_entries(path: str | Path, fmt: str | None = None) -> tuple[dict | None, dict[TableIdentity, list[dict]]]:
    """(device info or None, each table version's entries) from an exported file; ``fmt`` defaults to the
    file's suffix."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"{path}: format must be one of {', '.join(FORMATS)} (from --format or the file suffix), "
                           f"got {fmt!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    if fmt == "json":
        return _read_json(path, text)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(TABLE_FIELDS + ENTRY_FIELDS) - set(reader.fieldnames):
        raise InvalidInput(f"{path}: CSV header must name {', '.join(TABLE_FIELDS + ENTRY_FIELDS)}, got "
                           f"{reader.fieldnames}")
    versions: dict[TableIdentity, list[dict]] = {}
    for i, row in enumerate(reader):
        where = f"{path}: line {i + 2}"
        versions.setdefault(_parse_identity(row, where), []).append(_parse_entry(row, where))
    return None, versions


def _import_device(session, name: str, device_info: dict | None) -> Device:
    """The device an import writes into: this host's row for ``local`` or its name, else the stored one, else
    a new row, status "imported", of kind "local" for another host's name, else of the file's kind (a phone's
    by default)."""
    stored = resolve_name(name)
    if stored == host_device_name():
        return host_device(session)
    device = session.scalar(select(Device).where(Device.name == stored))
    if device is None:
        info = {k: v for k, v in (device_info or {}).items() if k in DEVICE_FIELDS}
        kind = "local" if is_host_name(stored) else (device_info or {}).get("kind", "adb")
        device = Device(name=stored, kind=kind, status="imported", **info)
        session.add(device)
        session.flush()
    return device


def import_table(store: Store, path: str | Path, device_name: str | None = None,
                 fmt: str | None = None) -> tuple[int, int]:
    """Import each table version of the file into the same version of ``device_name`` (default: the device named
    in a JSON file), made if new. Returns (added, skipped)."""
    device_info, versions = read_entries(path, fmt)
    name = device_name or (device_info or {}).get("name")
    if not name:
        raise InvalidInput(f"{path}: no device named in the file; pass --device NAME")
    added = skipped = 0
    with store.session() as session:
        device = _import_device(session, name, device_info)
        for identity, entries in versions.items():
            table = ensure_table(session, device, identity)
            have = set(session.scalars(select(LutEntry.key).where(LutEntry.table_id == table.id)))
            for entry in entries:
                if entry["key"] in have:
                    skipped += 1
                    continue
                have.add(entry["key"])
                session.add(LutEntry(table_id=table.id, settings={"imported_from": str(path)}, **entry))
                added += 1
    return added, skipped
