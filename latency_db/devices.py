"""Devices in the latency database. The host device ``local`` is always present."""

from __future__ import annotations

import platform
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from akd_tf.benchmark import LOCAL_DEVICE, resolve_core
from akd_tf.errors import MissingData
from akd_tf.interpreter import load_interpreter
from latency_db.schema import Device, as_utc, utcnow


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


def ensure_local_device(session: Session) -> Device:
    """The ``local`` device row, created (or refreshed with this host's facts) on demand."""
    device = session.scalar(select(Device).where(Device.name == LOCAL_DEVICE))
    if device is None:
        device = Device(name=LOCAL_DEVICE, kind="local")
        session.add(device)
    device.model = _cpu_model()
    device.abi = platform.machine()
    device.os_version = f"{platform.system()} {platform.release()}"
    device.core = resolve_core("auto")
    device.governor = _governor(device.core)
    device.runtime = load_interpreter().label
    device.last_seen_at = utcnow()
    session.flush()
    return device


def get_device(session: Session, name: str) -> Device:
    """The device called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name == LOCAL_DEVICE:
        return ensure_local_device(session)
    device = session.scalar(select(Device).where(Device.name == name))
    if device is None:
        known = sorted({LOCAL_DEVICE, *session.scalars(select(Device.name))})
        raise MissingData(f"unknown device {name!r}; known devices: {', '.join(known)}")
    return device


def list_devices(session: Session) -> list[Device]:
    ensure_local_device(session)
    return list(session.scalars(select(Device).order_by(Device.name)))


def phone_names(store) -> list[str]:
    """Names of every registered phone (devices of kind ``adb``)."""
    with store.session() as session:
        return list(session.scalars(select(Device.name).where(Device.kind == "adb").order_by(Device.name)))


def _when(moment) -> str | None:
    return None if moment is None else moment.replace(microsecond=0).isoformat()


def device_rows(store) -> list[dict]:
    """One plain dict per device for listings: status, last contact and the current lease holder."""
    now = utcnow()
    with store.session() as session:
        rows = []
        for d in list_devices(session):
            expires = d.lease_expires_at and as_utc(d.lease_expires_at)
            leased = d.lease_holder if d.lease_holder and expires is not None and expires > now else None
            rows.append({"name": d.name, "kind": d.kind, "model": d.model, "core": d.core, "status": d.status,
                         "last_seen": _when(d.last_seen_at), "lease_holder": leased, "address": d.address})
        return rows
