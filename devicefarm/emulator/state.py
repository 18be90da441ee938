"""What every service of one emulated phone shares: profile, files, heat, faults and the logs tests read."""

from __future__ import annotations

import os
import threading

from devicefarm.emulator.devicetree import BATTERY_DIR, THERMAL_DIR, write_sensor_files
from devicefarm.emulator.faults import Faults
from devicefarm.emulator.profiles import PhoneProfile, ThermalSensor
from devicefarm.emulator.sandbox import Sandbox, SandboxError
from devicefarm.emulator.thermal import ThermalModel

BM_FORMATS = ("recent", "older", "oldest")


class PhoneState:
    """Shared state of one phone. ``command_log`` lists every ``shell:``/``exec:`` command line received,
    ``taskset_log`` every ``(cpu_mask, command_line)`` run under ``taskset``, and ``fixed_performance_mode``
    the last value set with ``cmd power set-fixed-performance-mode-enabled`` (``None`` if never set).
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
        self.accept_new_keys = True
        self._files_lock = threading.Lock()
        self._sensor_dirs = tuple(str(sandbox.root.joinpath(d)) for d in (THERMAL_DIR, BATTERY_DIR))

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

    def is_sensor_path(self, path: str) -> bool:
        """Whether the device path ``path`` is, or lies in, a thermal-zone or battery directory (after
        ``..`` and symbolic links); an unusable path is not."""
        try:
            real = os.path.realpath(self.sandbox.host_path(path))
        except SandboxError:
            return False
        return any(real == d or real.startswith(d + os.sep) for d in self._sensor_dirs)

    def refresh_sensor_files_for(self, paths) -> None:
        """Refresh the sensor files before a command that may read them: any of ``paths`` (the command's
        words) is a sensor path. sysfs makes its values when read; rewriting every file before every command
        instead cost each shell command ~10 ms of disk writes that a real phone does not spend."""
        if any(self.is_sensor_path(path) for path in paths):
            self.refresh_sensor_files()
