"""Devices in the latency database: each host's CPU and the phones.

Each host measures into its own row, named ``local@HOST``; ``local`` is an alias for this host's row.
HOST is ``$AKD_TF_HOST_ID`` when set, else the host name. A per-host name rather than one ``local`` row with
a host column keeps ``devices.name`` the one key every command, job and search run names a device by, so
another host's timings are read by name (``--device local@build-7``) and never merged with these; the host
name rather than ``/etc/machine-id`` because people read it in listings and containers copy machine ids
from their image. A container whose host name changes on every start sets ``AKD_TF_HOST_ID`` to keep one
device (tests set it to pretend to be two hosts).

Looking a device up never writes (:func:`get_device`). Only paths that measure on this host create or
refresh its row (:func:`host_device`, through :func:`measuring_device`), so the row records the CPU,
core, governor and interpreter of the latest measurement.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from akd_tf.benchmark import LOCAL_DEVICE, resolve_core
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.interpreter import load_interpreter
from latency_db.schema import Device, as_utc, utcnow

HOST_ID_ENV = "AKD_TF_HOST_ID"
HOST_PREFIX = f"{LOCAL_DEVICE}@"
MAX_HOST_ID = 128 - len(HOST_PREFIX)  # devices.name holds 128 characters
UNKNOWN_RUNTIME = "unknown"


def host_id() -> str:
    """This host's identity: ``$AKD_TF_HOST_ID`` if set, else the host name."""
    value = os.environ.get(HOST_ID_ENV)
    if value is None:
        return socket.gethostname() or "localhost"
    if not value or len(value) > MAX_HOST_ID or any(c.isspace() or c == "@" for c in value):
        raise InvalidInput(f"{HOST_ID_ENV} must be 1 to {MAX_HOST_ID} characters without spaces or '@', "
                           f"got {value!r}")
    return value


def host_device_name() -> str:
    """This host's device name, ``local@HOST``: what ``local`` stands for."""
    return HOST_PREFIX + host_id()


def is_host_name(name: str) -> bool:
    """True for ``local`` and every ``local@HOST`` name (the names phones may not take)."""
    return name == LOCAL_DEVICE or name.startswith(HOST_PREFIX)


def resolve_name(name: str) -> str:
    """The stored name ``name`` stands for: ``local`` is this host's ``local@HOST``, any other name itself."""
    return host_device_name() if name == LOCAL_DEVICE else name


def is_this_host(device: Device) -> bool:
    return device.name == host_device_name()


def device_label(name: str) -> str:
    """``name`` quoted for messages, with the row it stands for: ``'local' (local@build-7)``, ``'pixel4'``."""
    stored = resolve_name(name)
    return repr(name) if stored == name else f"{name!r} ({stored})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _governor(core: int) -> str | None:
    try:
        return Path(f"/sys/devices/system/cpu/cpu{core}/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None


def host_device(session: Session) -> Device:
    """This host's device row, created or refreshed with this host's facts: for paths that measure here."""
    name = host_device_name()
    device = session.scalar(select(Device).where(Device.name == name))
    if device is None:
        device = Device(name=name, kind="local")
        session.add(device)
    device.model = _cpu_model()
    device.abi = platform.machine()
    device.os_version = f"{platform.system()} {platform.release()}"
    device.core = resolve_core("auto")
    device.governor = _governor(device.core)
    device.runtime = this_host_runtime()
    device.status = "online"
    device.last_seen_at = utcnow()
    session.flush()
    return device


def lookup_device(session: Session, name: str) -> Device | None:
    """The device called ``name`` (``local``: this host's), without writing; None only for this host's row
    before anything was measured here. Other unknown names raise MissingData listing the known ones."""
    stored = resolve_name(name)
    device = session.scalar(select(Device).where(Device.name == stored))
    if device is None and stored != host_device_name():
        known = sorted(session.scalars(select(Device.name)))
        raise MissingData(f"unknown device {name!r}; known devices: {', '.join(known) or 'none'}")
    return device


def get_device(session: Session, name: str) -> Device:
    """The device called ``name`` (``local``: this host's row), without writing; MissingData when it is not
    stored, listing the devices that are."""
    device = lookup_device(session, name)
    if device is None:
        known = sorted(session.scalars(select(Device.name)))
        raise MissingData(f"device {device_label(name)} has measured nothing on this host yet; known devices: "
                          f"{', '.join(known) or 'none'}")
    return device


def measuring_device(session: Session, name: str) -> Device:
    """The device a measurement of ``name`` is stored under: this host's row (created or refreshed) for
    ``local`` or its own name; a phone's row. Another host's row is refused: its CPU is not this one."""
    if resolve_name(name) == host_device_name():
        return host_device(session)
    device = get_device(session, name)
    if device.kind == "local":
        raise InvalidInput(f"device {name!r} is another host's CPU (this host is {host_device_name()}); measure "
                           f"it on that host, or use --device local")
    return device


def this_host_runtime() -> str:
    """The interpreter that measures on this host, as results record it (``ai-edge-litert 2.3.0``)."""
    return load_interpreter().label


def current_runtime(device: Device) -> str:
    """What measures on ``device`` now: this host's interpreter; for another device, the runtime its row
    recorded (a phone's benchmark binary, another host's interpreter at its latest measurement)."""
    if is_this_host(device):
        return this_host_runtime()
    return device.runtime or UNKNOWN_RUNTIME


def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.name)))


def phone_names(store) -> list[str]:
    """Names of every registered phone (devices of kind ``adb``)."""
    with store.session() as session:
        return list(session.scalars(select(Device.name).where(Device.kind == "adb").order_by(Device.name)))


def _when(moment) -> str | None:
    return None if moment is None else moment.replace(microsecond=0).isoformat()


def device_rows(store) -> list[dict]:
    """One plain dict per stored device for listings: status, last contact and the current lease holder."""
    now = utcnow()
    with store.session() as session:
        rows = []
        for d in list_devices(session):
            expires = d.lease_expires_at and as_utc(d.lease_expires_at)
            leased = d.lease_holder if d.lease_holder and expires is not None and expires > now else None
            rows.append({"name": d.name, "kind": d.kind, "model": d.model, "core": d.core, "status": d.status,
                         "last_seen": _when(d.last_seen_at), "lease_holder": leased, "address": d.address})
        return rows
