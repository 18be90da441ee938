"""What a phone is and how it is doing: properties, CPU topology, battery, thermal and cpufreq state.

The ``parse_*`` functions are pure (they read the text Android prints) and
:func:`probe_phone` / :func:`read_condition` run the commands through a
:class:`devicefarm.connection.PhoneConnection`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

from akd_tf.errors import InvalidInput
from devicefarm.connection import CommandFailed, CommandResult, PhoneConnection

CPU_DIR = "/sys/devices/system/cpu"
THERMAL_STATUS_NAMES = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")
_GETPROP_LINE = re.compile(r"^\[(.*?)\]: \[(.*)\]$")
_TEMPERATURE = re.compile(r"Temperature\{mValue=([-\d.]+), mType=(-?\d+), mName=([^,]*), mStatus=(\d+)\}")


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop`` without arguments prints ``[key]: [value]`` lines."""
    props = {}
    for line in text.splitlines():
        match = _GETPROP_LINE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def parse_cpu_list(text: str) -> list[int]:
    """Kernel CPU lists such as ``0-3,6,7`` (``/sys/devices/system/cpu/possible``)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidInput(f"unreadable CPU list {text.strip()!r}; expected e.g. '0-7' or '0-3,6'")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def pick_big_core(max_freq_khz: dict[int, int]) -> int:
    """The core with the highest maximum frequency (the prime core where there is one); ties → highest index."""
    if not max_freq_khz:
        raise InvalidInput("no CPU frequencies to pick a big core from")
    return max(max_freq_khz, key=lambda core: (max_freq_khz[core], core))


def core_mask(core: int) -> str:
    """``taskset``'s hexadecimal affinity mask for one core."""
    if core < 0:
        raise InvalidInput(f"core must be >= 0, got {core}")
    return format(1 << core, "x")


def parse_dumpsys_battery(text: str) -> dict:
    """Level (%), temperature (°C), status code and power sources from ``dumpsys battery``."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            values[key] = value.strip()
    if "level" not in values:
        raise InvalidInput(f"`dumpsys battery` printed no 'level:' line: {text.strip()[:200]!r}")
    scale = float(values.get("scale", 100) or 100)
    battery = {"level_pct": round(100.0 * float(values["level"]) / scale, 1)}
    if "temperature" in values:
        battery["temperature_c"] = float(values["temperature"]) / 10.0  # tenths of a degree
    if "status" in values:
        battery["status"] = int(values["status"])
    battery["plugged"] = any(values.get(f"{src} powered") == "true" for src in ("AC", "USB", "Wireless"))
    return battery


def parse_thermalservice(text: str) -> dict:
    """Thermal status (0 none .. 6 shutdown) and cached temperatures from ``dumpsys thermalservice``."""
    match = re.search(r"Thermal Status:\s*(\d+)", text)
    if match is None:
        raise InvalidInput(f"`dumpsys thermalservice` printed no 'Thermal Status:' line: {text.strip()[:200]!r}")
    status = int(match.group(1))
    temperatures = {}
    for value, _type, name, _status in _TEMPERATURE.findall(text):
        temperatures[name] = max(float(value), temperatures.get(name, float("-inf")))
    return {"status": status, "status_name": THERMAL_STATUS_NAMES[min(status, 6)], "temperatures_c": temperatures}


@dataclass(frozen=True)
class PhoneFacts:
    """What registration stores about a phone."""

    serial: str
    model: str
    manufacturer: str
    soc: str
    abi: str
    android: str
    sdk: int
    max_freq_khz: dict[int, int]
    big_core: int
    governor: str | None
    thermal_zones: int
    battery: dict = field(default_factory=dict)
    thermal: dict = field(default_factory=dict)

    def to_properties(self) -> dict:
        data = asdict(self)
        data["max_freq_khz"] = {str(k): v for k, v in self.max_freq_khz.items()}
        return data


@dataclass(frozen=True)
class Condition:
    """Battery, thermal and CPU state at one moment (recorded before and after each measurement).

    ``cpu`` is the measuring core's cpufreq state (:func:`parse_cpufreq`; empty when no core was read).
    """

    battery: dict
    thermal: dict
    cpu: dict = field(default_factory=dict)

    @property
    def temperature_c(self) -> float:
        """The hottest reading: battery temperature or any thermal-service sensor."""
        readings = list(self.thermal.get("temperatures_c", {}).values())
        if "temperature_c" in self.battery:
            readings.append(self.battery["temperature_c"])
        return max(readings) if readings else float("nan")


CONDITION_COMMANDS = (["dumpsys", "battery"], ["dumpsys", "thermalservice"])
# what is read of the measuring core, by the key it is stored under: a cpufreq file each (frequencies in kHz)
CPUFREQ_FILES = {"governor": "scaling_governor", "cur_freq_khz": "scaling_cur_freq",
                 "min_freq_khz": "scaling_min_freq", "max_freq_khz": "scaling_max_freq",
                 "cpuinfo_max_freq_khz": "cpuinfo_max_freq"}


def cpufreq_commands(core: int) -> list[list[str]]:
    """One ``cat`` per file of :data:`CPUFREQ_FILES` of ``core``: each has its own exit status, so a file a
    phone lacks or hides costs only its own value."""
    if isinstance(core, bool) or not isinstance(core, int) or core < 0:
        raise InvalidInput(f"core must be an int >= 0, got {core!r}")
    return [["cat", f"{CPU_DIR}/cpu{core}/cpufreq/{name}"] for name in CPUFREQ_FILES.values()]


def parse_cpufreq(core: int, results: Sequence[CommandResult]) -> dict:
    """``{"core", "governor", "cur_freq_khz", "min_freq_khz", "max_freq_khz", "cpuinfo_max_freq_khz"}`` from
    the results of :func:`cpufreq_commands`; a file that is missing, unreadable or (for a frequency) not a
    whole number is ``None``."""
    if len(results) != len(CPUFREQ_FILES):
        raise InvalidInput(f"expected {len(CPUFREQ_FILES)} cpufreq results, got {len(results)}")
    state: dict = {"core": core}
    for key, result in zip(CPUFREQ_FILES, results):
        text = result.output.strip() if result.exit_code == 0 else ""
        if key == "governor":
            state[key] = text or None
        else:
            state[key] = int(text) if text.isascii() and text.isdigit() else None
    return state


def condition_commands(core: int | None = None) -> list[list[str]]:
    """What :func:`condition_from` reads, in order: battery, thermal service and, given a core, its cpufreq
    files (:func:`cpufreq_commands`); sent as one shell line."""
    return [*CONDITION_COMMANDS, *(cpufreq_commands(core) if core is not None else [])]


def condition_from(results: Sequence[CommandResult], core: int | None = None) -> Condition:
    """The :class:`Condition` in the results of :func:`condition_commands` (``core`` as given there);
    ``CommandFailed`` if ``dumpsys battery`` failed, ``ValueError`` if it printed no level."""
    battery, thermal, *cpufreq = results
    if battery.exit_code != 0:
        raise CommandFailed(battery.argv, battery.exit_code, battery.output)
    try:
        thermal_state = parse_thermalservice(thermal.output) if thermal.exit_code == 0 else {}
    except ValueError:  # before Android 10 there is no thermal service
        thermal_state = {}
    cpu = parse_cpufreq(core, cpufreq) if core is not None else {}
    return Condition(parse_dumpsys_battery(battery.output), thermal_state, cpu)


def read_condition(conn: PhoneConnection, core: int | None = None) -> Condition:
    """Battery and thermal state now, and ``core``'s cpufreq state if given, read with one shell line."""
    return condition_from(conn.run_all(condition_commands(core), check=False), core)


def _read(conn: PhoneConnection, path: str) -> str | None:
    result = conn.run(["cat", path], check=False)
    return result.output.strip() if result.exit_code == 0 else None


def read_cpufreq(conn: PhoneConnection, core: int) -> dict:
    """``core``'s cpufreq state now (:func:`parse_cpufreq`: governor, frequencies), read with one shell line."""
    return parse_cpufreq(core, conn.run_all(cpufreq_commands(core), check=False))


def probe_phone(conn: PhoneConnection) -> PhoneFacts:
    """Properties, CPU topology (max frequency per core → big core), governor, thermal zones, battery."""
    props = parse_getprop(conn.output(["getprop"]))
    cpus = parse_cpu_list(conn.output(["cat", f"{CPU_DIR}/possible"]))
    freqs = {}
    for cpu in cpus:
        value = _read(conn, f"{CPU_DIR}/cpu{cpu}/cpufreq/cpuinfo_max_freq")
        if value and value.isdigit():
            freqs[cpu] = int(value)
    if not freqs:
        raise InvalidInput(f"{conn.address}: no cpuinfo_max_freq readable for CPUs {cpus}; pass --core N explicitly")
    big = pick_big_core(freqs)
    zones = conn.run(["ls", "/sys/class/thermal"], check=False)
    condition = read_condition(conn)
    return PhoneFacts(
        serial=props.get("ro.serialno", ""), model=props.get("ro.product.model", "unknown"),
        manufacturer=props.get("ro.product.manufacturer", ""),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", ""),
        abi=props.get("ro.product.cpu.abi", ""), android=props.get("ro.build.version.release", ""),
        sdk=int(props.get("ro.build.version.sdk", "0") or 0), max_freq_khz=freqs, big_core=big,
        governor=read_cpufreq(conn, big)["governor"],
        thermal_zones=sum(name.startswith("thermal_zone") for name in zones.output.split()) if zones.exit_code == 0
        else 0,
        battery=condition.battery, thermal=condition.thermal)
