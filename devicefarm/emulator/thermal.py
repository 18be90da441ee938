"""The emulated phone's temperatures: they rise while ``benchmark_model`` runs and fall back when idle.

One number drives every sensor: the rise above ambient. While at least one benchmark runs it grows by
``heat_c_per_s`` per second (up to ``max_rise_c``); while none runs it shrinks by ``cool_c_per_s`` per second
down to 0. A sensor reads ``ambient_c + rise * heat_share``. Skin sensors map to Android's thermal
status levels (0 = none .. 6 = shutdown) by the profile's ``skin_thresholds_c``; other sensors report 0.
"""

from __future__ import annotations

import bisect
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from devicefarm.emulator.profiles import TYPE_SKIN, PhoneProfile, ThermalSensor


def sensor_status(profile: PhoneProfile, sensor: ThermalSensor, celsius: float) -> int:
    """Android's throttling status (0..6) that ``sensor`` reports at ``celsius``: the highest level whose
    threshold has been reached, for skin sensors; 0 for the others."""
    if sensor.hal_type != TYPE_SKIN:
        return 0
    return bisect.bisect_right(profile.skin_thresholds_c, celsius)


def thermal_status(profile: PhoneProfile, temperatures: list[tuple[ThermalSensor, float]]) -> int:
    """The phone's overall thermal status: the highest of its sensors' (0 when it has none)."""
    return max((sensor_status(profile, sensor, celsius) for sensor, celsius in temperatures), default=0)


class ThermalModel:
    """Thread-safe heat state of one phone; ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, profile: PhoneProfile, clock: Callable[[], float] = time.monotonic):
        self._profile = profile
        self._clock = clock
        self._lock = threading.Lock()
        self._rise = 0.0
        self._running = 0
        self._last = clock()

    def _advance(self) -> None:
        now = self._clock()
        elapsed, self._last = max(0.0, now - self._last), now
        if self._running:
            self._rise = min(self._profile.max_rise_c, self._rise + self._profile.heat_c_per_s * elapsed)
        else:
            self._rise = max(0.0, self._rise - self._profile.cool_c_per_s * elapsed)

    @contextmanager
    def under_load(self) -> Iterator[None]:
        """Heat the phone for the duration of the ``with`` block."""
        with self._lock:
            self._advance()
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._advance()
                self._running -= 1

    def busy(self) -> bool:
        """Whether a benchmark runs right now."""
        with self._lock:
            return self._running > 0

    def rise_c(self) -> float:
        """Degrees above ambient right now."""
        with self._lock:
            self._advance()
            return self._rise

    def sensor_temperatures(self, override_c: float | None = None) -> list[tuple[ThermalSensor, float]]:
        """Every sensor with its temperature in degrees C (``override_c`` replaces every reading)."""
        rise = self.rise_c()
        return [(sensor, override_c if override_c is not None else sensor.ambient_c + rise * sensor.heat_share)
                for sensor in self._profile.sensors]

    def battery_temperature_c(self, override_c: float | None = None) -> float:
        if override_c is not None:
            return override_c
        return self._profile.battery_ambient_c + self.rise_c() * self._profile.battery_heat_share
