"""Sharing lookup tables between teams: export and import as CSV or JSON.

Import runs in one transaction: a corrupt file writes nothing, and entries
already present (same device, key and quantization) are left as they are, so
importing the same file twice adds nothing the second time. ``p90_us`` may be
absent (Android's benchmark_model reports no percentiles): CSV writes an empty
field and JSON ``null``, and both read back as ``None``.
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
from latency_db.devices import get_device
from latency_db.schema import Device, LutEntry
from latency_db.store import Store

FORMATS = ("csv", "json")
FORMAT_NAME = "akd-tf-lut"
FORMAT_VERSION = 1
ENTRY_FIELDS = ("key", "quantization", "median_us", "mean_us", "std_us", "min_us", "p90_us", "count", "measured_at")
FLOAT_FIELDS = ("median_us", "mean_us", "std_us", "min_us", "p90_us")
OPTIONAL_FIELDS = ("p90_us",)  # empty (CSV) or null (JSON) means None


def export_table(store: Store, device_name: str, fmt: str) -> str:
    """The device's lookup table as CSV or JSON text."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with store.session() as session:
        device = get_device(session, device_name)
        entries = session.scalars(select(LutEntry).where(LutEntry.device_id == device.id)
                                  .order_by(LutEntry.quantization, LutEntry.key)).all()
        rows = [{f: getattr(e, f) for f in ENTRY_FIELDS} for e in entries]
        device_info = {c: getattr(device, c) for c in ("name", "kind", "model", "soc", "abi", "os_version", "runtime")}
    for row in rows:
        row["measured_at"] = row["measured_at"].isoformat()
    if fmt == "json":
        return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "device": device_info,
                           "entries": rows}, indent=1)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ENTRY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _parse_entry(raw: dict, where: str) -> dict:
    missing = [f for f in ENTRY_FIELDS if f not in raw or (raw[f] in (None, "") and f not in OPTIONAL_FIELDS)]
    if missing:
        raise InvalidInput(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        entry = {"key": str(raw["key"]), "quantization": str(raw["quantization"]), "count": int(raw["count"]),
                 "measured_at": datetime.fromisoformat(str(raw["measured_at"])),
                 **{f: None if raw[f] in (None, "") else float(raw[f]) for f in FLOAT_FIELDS}}
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    if any(entry[f] is not None and (not math.isfinite(entry[f]) or entry[f] < 0) for f in FLOAT_FIELDS) \
            or entry["count"] < 1:
        raise InvalidInput(f"{where}: latencies must be finite and >= 0 and count >= 1")
    return entry


def read_entries(path: str | Path, fmt: str | None = None) -> tuple[dict | None, list[dict]]:
    """(device info or None, entries) from an exported file; ``fmt`` defaults to the file's suffix."""
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
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise InvalidInput(f"{path}: not an {FORMAT_NAME} file (missing \"format\": \"{FORMAT_NAME}\")")
        if doc.get("version") != FORMAT_VERSION:
            raise InvalidInput(f"{path}: unsupported version {doc.get('version')!r}, expected {FORMAT_VERSION}")
        raws = doc.get("entries")
        if not isinstance(raws, list):
            raise InvalidInput(f"{path}: \"entries\" must be a list")
        return doc.get("device"), [_parse_entry(r if isinstance(r, dict) else {}, f"{path}: entry {i + 1}")
                                   for i, r in enumerate(raws)]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(ENTRY_FIELDS) - set(reader.fieldnames):
        raise InvalidInput(f"{path}: CSV header must name {', '.join(ENTRY_FIELDS)}, got {reader.fieldnames}")
    return None, [_parse_entry(r, f"{path}: line {i + 2}") for i, r in enumerate(reader)]


def import_table(store: Store, path: str | Path, device_name: str | None = None, fmt: str | None = None) -> tuple[int, int]:
    """Import entries into ``device_name`` (default: the device named in a JSON file). Returns (added, skipped)."""
    device_info, entries = read_entries(path, fmt)
    name = device_name or (device_info or {}).get("name")
    if not name:
        raise InvalidInput(f"{path}: no device named in the file; pass --device NAME")
    with store.session() as session:
        device = session.scalar(select(Device).where(Device.name == name))
        if device is None:
            if name == "local":
                device = get_device(session, name)
            else:
                info = {k: v for k, v in (device_info or {}).items() if k in ("model", "soc", "abi", "os_version", "runtime")}
                device = Device(name=name, kind=(device_info or {}).get("kind", "adb"), status="imported", **info)
                session.add(device)
                session.flush()
        have = set(session.execute(select(LutEntry.key, LutEntry.quantization)
                                   .where(LutEntry.device_id == device.id)).all())
        added = 0
        for entry in entries:
            if (entry["key"], entry["quantization"]) in have:
                continue
            have.add((entry["key"], entry["quantization"]))
            session.add(LutEntry(device_id=device.id, settings={"imported_from": str(path)}, **entry))
            added += 1
    return added, len(entries) - added
