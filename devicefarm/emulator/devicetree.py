"""The files a phone profile puts in the emulated file system: CPU topology, cpufreq, thermal zones, battery.

:func:`populate` writes the whole tree once; :func:`write_sensor_files` and :func:`write_cpufreq_files`
rewrite the files whose contents change over time (temperatures, battery level; a core's frequencies), so
readers of ``/sys`` see the current values.
"""

from __future__ import annotations

import os
from pathlib import Path

from devicefarm.emulator.cpufreq import scaling_freqs_khz
from devicefarm.emulator.profiles import CpuCluster, PhoneProfile, ThermalSensor
from devicefarm.emulator.sandbox import WRITABLE_DIRS

CPU_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
THERMAL_DIR = "sys/class/thermal"
BATTERY_DIR = "sys/class/power_supply/battery"
CPU_DIR = "sys/devices/system/cpu"


def cpufreq_dir(core: int) -> str:
    return f"{CPU_DIR}/cpu{core}/cpufreq"


def cpu_list(cores) -> str:
    """Kernel CPU-list notation: ``[0, 1, 2, 3, 5]`` -> ``"0-3,5"``."""
    cores = sorted(cores)
    ranges, start = [], None
    for index, core in enumerate(cores):
        if start is None:
            start = core
        if index + 1 == len(cores) or cores[index + 1] != core + 1:
            ranges.append(str(start) if start == core else f"{start}-{core}")
            start = None
    return ",".join(ranges)


def _write(path: Path, text: str) -> None:
    """Replace a file's contents at once, so a concurrent reader sees the old or the new text, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # hidden from ls
    partial.write_text(text)
    os.replace(partial, path)


def proc_cpuinfo(profile: PhoneProfile) -> str:
    """``/proc/cpuinfo`` as an arm64 kernel prints it."""
    cluster_of = {core: cluster for cluster in profile.clusters for core in cluster.cores}
    blocks = []
    for core in range(profile.num_cpus):
        cluster = cluster_of[core]
        blocks.append(
            f"processor\t: {core}\nBogoMIPS\t: 38.40\nFeatures\t: {CPU_FEATURES}\n"
            f"CPU implementer\t: 0x{cluster.implementer:02x}\nCPU architecture: 8\n"
            f"CPU variant\t: 0x{cluster.variant:x}\nCPU part\t: 0x{cluster.part:03x}\n"
            f"CPU revision\t: {cluster.revision}\n")
    return "\n".join(blocks) + f"\nHardware\t: {profile.hardware_name}\n"


def populate(root: Path, profile: PhoneProfile) -> None:
    """Write the profile's system files under ``root`` and create the writable directories."""
    everything = cpu_list(range(profile.num_cpus)) + "\n"
    for name in ("possible", "present", "online"):
        _write(root / CPU_DIR / name, everything)
    for cluster in profile.clusters:
        for core in cluster.cores:
            (root / cpufreq_dir(core)).mkdir(parents=True, exist_ok=True)
            for name, value in (("cpuinfo_max_freq", cluster.max_freq_khz), ("cpuinfo_min_freq", cluster.min_freq_khz),
                                ("scaling_governor", profile.governor), ("related_cpus", cpu_list(cluster.cores))):
                if name not in profile.missing_cpufreq_files:
                    _write(root / cpufreq_dir(core) / name, f"{value}\n")
            write_cpufreq_files(root, profile, core, cluster, fixed_performance=False, thermal_status=0, busy=False)
    for index, sensor in enumerate(profile.sensors):
        _write(root / THERMAL_DIR / f"thermal_zone{index}" / "type", sensor.zone_type + "\n")
    _write(root / BATTERY_DIR / "technology", "Li-ion\n")
    _write(root / BATTERY_DIR / "status", "Charging\n")
    _write(root / "proc/cpuinfo", proc_cpuinfo(profile))
    for directory in WRITABLE_DIRS:
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)


def write_sensor_files(root: Path, temperatures: list[tuple[ThermalSensor, float]], battery_c: float,
                       battery_level: int) -> None:
    """Rewrite the zones' ``temp`` (millidegrees C) and the battery's ``temp`` (tenths) and ``capacity``."""
    for index, (_, celsius) in enumerate(temperatures):
        _write(root / THERMAL_DIR / f"thermal_zone{index}" / "temp", f"{round(celsius * 1000)}\n")
    _write(root / BATTERY_DIR / "temp", f"{round(battery_c * 10)}\n")
    _write(root / BATTERY_DIR / "capacity", f"{battery_level}\n")


def write_cpufreq_files(root: Path, profile: PhoneProfile, core: int, cluster: CpuCluster, *, fixed_performance: bool,
                        thermal_status: int, busy: bool) -> None:
    """Rewrite ``core``'s ``scaling_min_freq``, ``scaling_max_freq`` and ``scaling_cur_freq`` (those the profile
    has) from :func:`devicefarm.emulator.cpufreq.scaling_freqs_khz`."""
    freqs = scaling_freqs_khz(cluster, fixed_performance=fixed_performance, thermal_status=thermal_status, busy=busy)
    for name, khz in freqs.items():
        if name not in profile.missing_cpufreq_files:
            _write(root / cpufreq_dir(core) / name, f"{khz}\n")
