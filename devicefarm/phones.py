"""Registering, checking and removing phones in the latency database."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select

from akd_tf.benchmark import choose_core
from akd_tf.errors import InvalidInput
from devicefarm.connection import PhoneConnection, PhoneUnavailable
from devicefarm.probe import Condition, probe_phone, read_condition, read_cpufreq
from devicefarm.runner import (DEFAULT_WORKDIR, PhoneLimits, PhoneRunner, benchmark_runtime, check_benchmark_binary,
                               health_problems)
from latency_db.devices import get_device, is_host_name
from latency_db.schema import Device, LatencyTable, LutEntry, Measurement, utcnow
from latency_db.store import Store

BENCHMARK_BINARY_HELP = (
    "benchmark_model is not in any package registry: download the Android arm64 'benchmark_model' nightly "
    "linked from https://www.tensorflow.org/lite/performance/measurement, or build it with "
    "`bazel build -c opt --config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model`")

PHONE_KIND = "adb"


def default_name(model: str, serial: str) -> str:
    """``pixel-4-<serial>``: the model slugged, then the serial."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "phone"
    return f"{slug}-{re.sub(r'[^A-Za-z0-9]+', '', serial)}" if serial else slug


def probe_model(workdir: Path) -> Path:
    """A small real model (a fixed architecture of the default space at 32x32) to prove benchmark_model runs."""
    from akd_tf import export
    from akd_tf.space import get_space

    arch = get_space().sample_many(1, seed=0)[0]
    model = export.build_for_export(arch, (32, 32, 3), 10, seed=0)
    return Path(export.export_tflite(model, workdir / "akd-tf-probe.tflite", "none", seed=0).path)


@dataclass(frozen=True)
class Registration:
    device: Device
    probe_latency_us: float
    fixed_performance: bool | None  # the probe measurement's mode: True on, None refused by the phone


def register_phone(store: Store, address: str, *, name: str | None = None, benchmark_binary: Path | None = None,
                   core: int | str = "auto", key_path: Path | str | None = None, workdir: str = DEFAULT_WORKDIR,
                   auth_timeout_s: float = 60.0, limits: PhoneLimits = PhoneLimits(),
                   on_auth_prompt: Callable[[str], None] | None = None,
                   log: Callable[[str], None] | None = None) -> Registration:
    """Connect, probe, install benchmark_model, prove it runs on a real model, store the phone.

    Registering an already registered name (or the same phone again) updates its row.
    """
    log = log or (lambda message: None)
    if benchmark_binary is not None and not Path(benchmark_binary).is_file():
        raise InvalidInput(f"benchmark binary {benchmark_binary} is not a file; {BENCHMARK_BINARY_HELP}")
    if name is not None and is_host_name(name):
        raise InvalidInput(f"the name {name!r} is reserved for host devices ('local', 'local@HOST'); choose another "
                           f"--name")
    with PhoneConnection(address, key_path=key_path, auth_timeout_s=auth_timeout_s,
                         on_auth_prompt=on_auth_prompt) as conn:
        conn.connect()
        facts = probe_phone(conn)
        log(f"{address}: {facts.manufacturer} {facts.model} ({facts.soc}, Android {facts.android}, {facts.abi}); "
            f"max frequencies {facts.max_freq_khz}")
        chosen = choose_core(core, facts.max_freq_khz, facts.big_core, forms="an integer or 'auto'",
                             where="one of the phone's cores")
        governor_of_chosen = read_cpufreq(conn, chosen)["governor"] if chosen != facts.big_core else facts.governor
        name = name or default_name(facts.model, facts.serial)
        remote_binary = f"{workdir}/benchmark_model"
        runner = PhoneRunner(conn, core=chosen, benchmark_binary=remote_binary, name=name, limits=limits,
                             workdir=workdir, log=log)
        conn.run(["mkdir", "-p", workdir])
        if benchmark_binary is not None:
            log(f"{name}: installing {benchmark_binary} as {remote_binary}")
            runner.push_verified(Path(benchmark_binary), remote_binary, mode=0o755)
        elif conn.run(["ls", remote_binary], check=False).exit_code != 0:
            raise InvalidInput(f"{name} has no {remote_binary}; pass --benchmark-binary PATH. {BENCHMARK_BINARY_HELP}")
        with tempfile.TemporaryDirectory(prefix="akd-tf-probe-") as tmp:
            measured = check_benchmark_binary(runner, probe_model(Path(tmp)))
        log(f"{name}: benchmark_model runs on core {chosen}: probe model {measured.result.mean_us:.0f} us")
        runtime = benchmark_runtime(runner.binary_digest())
        log(f"{name}: its runtime is {runtime} (a new binary is a new runtime: its timings start new table versions)")
    with store.session() as session:
        device = session.scalar(select(Device).where(Device.name == name))
        same_phone = session.scalar(select(Device).where(Device.kind == PHONE_KIND, Device.serial == facts.serial,
                                                         Device.name != name)) if facts.serial else None
        if same_phone is not None:
            raise InvalidInput(f"phone {facts.serial} is already registered as {same_phone.name!r}; register it "
                               f"with --name {same_phone.name} to update it, or remove that entry first")
        if device is None:
            device = Device(name=name, kind=PHONE_KIND)
            session.add(device)
        elif device.kind != PHONE_KIND:
            raise InvalidInput(f"device {name!r} is a {device.kind!r} device; choose another --name")
        device.serial, device.address, device.model, device.soc = facts.serial, address, facts.model, facts.soc
        device.abi, device.os_version, device.core = facts.abi, f"Android {facts.android}", chosen
        device.governor = governor_of_chosen
        device.runtime, device.benchmark_binary = runtime, remote_binary
        device.properties = {**facts.to_properties(), "workdir": workdir,
                             "fixed_performance": measured.before.cpu["fixed_performance"]}
        device.status, device.consecutive_failures, device.last_seen_at = "online", 0, utcnow()
        session.flush()
        session.expunge(device)
    return Registration(device, measured.result.mean_us, measured.before.cpu["fixed_performance"])


@dataclass(frozen=True)
class Health:
    name: str
    reachable: bool
    condition: Condition | None
    governor: str | None
    problems: list[str]

    @property
    def healthy(self) -> bool:
        return self.reachable and not self.problems

    def to_dict(self) -> dict:
        """The record ``akd-tf devices check --json`` prints per phone."""
        return {"name": self.name, "healthy": self.healthy, "reachable": self.reachable,
                "battery": self.condition.battery if self.condition else None,
                "thermal": self.condition.thermal if self.condition else None,
                "cpu": self.condition.cpu if self.condition else None,
                "governor": self.governor, "problems": self.problems}


def check_phone(store: Store, name: str, *, key_path: Path | str | None = None,
                limits: PhoneLimits = PhoneLimits(), connect_timeout_s: float = 10.0) -> Health:
    """Reachability, battery, temperatures, thermal status, and the measuring core's governor and frequencies;
    the device's status is updated."""
    with store.session() as session:
        device = get_device(session, name)
        if device.kind != PHONE_KIND:
            raise InvalidInput(f"device {name!r} is a {device.kind!r} device, not a phone")
        address, core = device.address, device.core
    try:
        with PhoneConnection(address, key_path=key_path, connect_timeout_s=connect_timeout_s,
                             auth_timeout_s=connect_timeout_s, retries=1) as conn:
            condition = read_condition(conn)
            if core is not None:
                condition = replace(condition, cpu=read_cpufreq(conn, core))
    except PhoneUnavailable as error:
        health = Health(name, False, None, None, [str(error)])
    else:
        health = Health(name, True, condition, condition.cpu.get("governor"), health_problems(condition, limits))
    with store.session() as session:
        device = get_device(session, name)
        device.status = "offline" if not health.reachable else "unhealthy" if health.problems else "online"
        if health.reachable:
            device.last_seen_at = utcnow()
            device.consecutive_failures = 0
            device.governor = health.governor or device.governor
    return health


def remove_device(store: Store, name: str, *, force: bool = False) -> dict[str, int]:
    """Delete a phone; with measurements or table entries stored, only when ``force`` (they go with it)."""
    if is_host_name(name):
        raise InvalidInput(f"{name!r} is a host device; only phones are removed")
    with store.session() as session:
        device = get_device(session, name)
        counts = {"measurements": session.scalar(select(func.count()).where(Measurement.device_id == device.id)),
                  "lut_entries": session.scalar(select(func.count()).select_from(LutEntry).join(LatencyTable)
                                                .where(LatencyTable.device_id == device.id))}
        if device.lease_holder and not force:
            raise InvalidInput(f"device {name!r} is leased by {device.lease_holder}; stop that worker or pass --force")
        if any(counts.values()) and not force:
            raise InvalidInput(f"device {name!r} has {counts['measurements']} measurements and {counts['lut_entries']} "
                               f"latency-table entries that would be deleted with it; export them first "
                               f"(akd-tf latency export) and pass --force")
        session.delete(device)
    return counts
