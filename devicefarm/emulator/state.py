"""What every service of one emulated phone shares: profile, files, heat, power mode, faults and the logs tests
read."""

from __future__ import annotations

import os
import threading

from devicefarm.emulator.devicetree import (BATTERY_DIR, THERMAL_DIR, cpufreq_dir, write_cpufreq_files,
                                            write_sensor_files)
from devicefarm.emulator.faults import Faults
from devicefarm.emulator.profiles import PhoneProfile, ThermalSensor
from devicefarm.emulator.sandbox import Sandbox, SandboxError
from devicefarm.emulator.thermal import ThermalModel, thermal_status

BM_FORMATS = ("recent", "older", "oldest")


class PhoneState:
    """Shared state of one phone. ``command_log`` lists every ``shell:``/``exec:`` command line received,
    ``taskset_log`` every ``(cpu_mask, command_line)`` run under ``taskset``, and ``fixed_performance_mode``
    the last value set with ``cmd power set-fixed-performance-mode-enabled`` (``None`` if never set); the
    cpufreq files follow it (:mod:`devicefarm.emulator.cpufreq`). ``benchmark_runs`` counts the
    ``benchmark_model`` runs that have started timing a model (:meth:`next_benchmark_run` numbers them).
    ``accept_new_keys`` says whether an unknown host key is allowed (the user taps "Allow")."""

    def __init__(self, profile: PhoneProfile, serial: str, sandbox: Sandbox, faults: Faults, bm_format: str,
                 thermal: ThermalModel):
        if bm_format not in BM_FORMATS:
            raise ValueError(f"bm_format must be one of {', '.join(BM_FORMATS)}, got {bm_format!r}")
        self.profile, self.serial, self.sandbox = profile, serial, sandbox
        self.faults, self.bm_format, self.thermal = faults, bm_format, thermal
        self.command_log: list[str] = []
        self.taskset_log: list[tuple[int, str]] = []
        self.fixed_performance_mode: bool | None = None
        self.benchmark_runs = 0
        self.accept_new_keys = True
        self._runs_lock = threading.Lock()
        self._files_lock = threading.Lock()
        self._sensor_dirs = tuple(str(sandbox.root.joinpath(d)) for d in (THERMAL_DIR, BATTERY_DIR))
        self._clusters = {core: cluster for cluster in profile.clusters for core in cluster.cores}
        self._cpufreq_dirs = {str(sandbox.root.joinpath(cpufreq_dir(core))): core for core in self._clusters}

    def next_benchmark_run(self) -> int:
        """Count a ``benchmark_model`` run that starts timing a model; its number (the first is 1)."""
        with self._runs_lock:
            self.benchmark_runs += 1
            return self.benchmark_runs

    def properties(self) -> dict[str, str]:
        return self.profile.properties(self.serial)

    def battery_level(self) -> int:
        override = self.faults.battery_level
        return self.profile.battery_level if override is None else override

    def temperatures(self) -> list[tuple[ThermalSensor, float]]:
        return self.thermal.sensor_temperatures(self.faults.temperature_c)

    def battery_temperature_c(self) -> float:
        return self.thermal.battery_temperature_c(self.faults.temperature_c)

    def refresh_sensor_files(self) -> None:
        """Bring the thermal-zone and battery files up to date."""
        with self._files_lock:
            write_sensor_files(self.sandbox.root, self.temperatures(), self.battery_temperature_c(),
                               self.battery_level())

    def refresh_cpufreq_files(self, core: int) -> None:
        """Bring ``core``'s scaling frequencies up to date with the power mode, the heat and the load."""
        with self._files_lock:
            write_cpufreq_files(self.sandbox.root, self.profile, core, self._clusters[core],
                                fixed_performance=bool(self.fixed_performance_mode),
                                thermal_status=thermal_status(self.profile, self.temperatures()),
                                busy=self.thermal.busy())

    def _real_path(self, path: str) -> str | None:
        """The host path ``path`` leads to after ``..`` and symbolic links; ``None`` for an unusable path."""
        try:
            return os.path.realpath(self.sandbox.host_path(path))
        except SandboxError:
            return None

    @staticmethod
    def _within(real: str | None, directory: str) -> bool:
        return real is not None and (real == directory or real.startswith(directory + os.sep))

    def is_sensor_path(self, path: str) -> bool:
        """Whether the device path ``path`` is, or lies in, a thermal-zone or battery directory (after
        ``..`` and symbolic links); an unusable path is not."""
        real = self._real_path(path)
        return any(self._within(real, d) for d in self._sensor_dirs)

    def cpufreq_core(self, path: str) -> int | None:
        """The core whose cpufreq directory the device path ``path`` is, or lies in (after ``..`` and
        symbolic links); else ``None``."""
        real = self._real_path(path)
        return next((core for d, core in self._cpufreq_dirs.items() if self._within(real, d)), None)

    def refresh_files_for(self, paths) -> None:
        """Refresh the sensor files, and a core's cpufreq files, before a command that may read them: any of
        ``paths`` (the command's words) is a sensor path, or in that core's cpufreq directory. sysfs makes
        its values when read; rewriting every file before every command instead cost each shell command
        ~10 ms of disk writes that a real phone does not spend."""
        reals = [self._real_path(path) for path in paths]
        if any(self._within(real, d) for real in reals for d in self._sensor_dirs):
            self.refresh_sensor_files()
        cores = {core for real in reals for d, core in self._cpufreq_dirs.items() if self._within(real, d)}
        for core in sorted(cores):
            self.refresh_cpufreq_files(core)
