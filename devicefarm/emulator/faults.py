"""Faults an emulated phone can be told to show; change them on a running phone at any time."""

from __future__ import annotations

import math
from dataclasses import dataclass

_FLAGS = ("drop_during_benchmark", "garbage_output", "fail_benchmark", "reject_auth")
_RUN_NUMBERS = ("slow_benchmark_runs", "drop_benchmark_runs")


class InjectedDisconnect(Exception):
    """Raised inside a service to make its connection drop (``Faults.drop_during_benchmark``)."""


@dataclass
class Faults:
    """What goes wrong on the phone; every field is validated when set, also after construction.

    - ``drop_during_benchmark``: the TCP connection is reset right after ``benchmark_model``'s warm-up
      statistics line has been delivered (and acknowledged by the host).
    - ``drop_benchmark_runs``: the same, only in the ``benchmark_model`` runs of these numbers (a phone numbers
      the runs that time a model from 1 on: ``EmulatedPhone.benchmark_runs`` counts them).
    - ``slow_benchmark_runs``: in the runs of these numbers every timing ``benchmark_model`` reports is
      ``slow_benchmark_factor`` times the measured one, as if a burst of interference or a throttled clock
      had hit that run (its wall time is not stretched).
    - ``garbage_output``: ``benchmark_model`` prints text with no timings and exits 0.
    - ``fail_benchmark``: ``benchmark_model`` prints an ``ERROR:`` line and exits 1 after loading the model.
    - ``slow_response_s``: seconds slept before every packet the phone sends.
    - ``reject_auth``: every signature fails and a new key's prompt is never answered.
    - ``temperature_c``: every temperature reading (thermal zones, thermalservice, battery) is this value.
    - ``battery_level``: the battery level (percent) reported instead of the profile's.
    """

    drop_during_benchmark: bool = False
    garbage_output: bool = False
    fail_benchmark: bool = False
    slow_response_s: float = 0.0
    reject_auth: bool = False
    temperature_c: float | None = None
    battery_level: int | None = None
    drop_benchmark_runs: frozenset[int] = frozenset()
    slow_benchmark_runs: frozenset[int] = frozenset()
    slow_benchmark_factor: float = 3.0

    def __setattr__(self, name: str, value) -> None:
        if name in _FLAGS and not isinstance(value, bool):
            raise ValueError(f"Faults.{name} must be a bool, got {value!r}")
        if name in _RUN_NUMBERS:
            if not isinstance(value, (set, frozenset, list, tuple)) or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in value):
                raise ValueError(f"Faults.{name} must be a set of benchmark_model run numbers (ints >= 1), "
                                 f"got {value!r}")
            value = frozenset(value)
        if name == "slow_benchmark_factor" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                                or not math.isfinite(value) or value <= 0):
            raise ValueError(f"Faults.slow_benchmark_factor must be a finite number > 0, got {value!r}")
        if name == "slow_response_s" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not math.isfinite(value) or value < 0):
            raise ValueError(f"Faults.slow_response_s must be a finite number >= 0, got {value!r}")
        if name == "temperature_c" and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ValueError(f"Faults.temperature_c must be None or a finite number of degrees C, got {value!r}")
        if name == "battery_level" and value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100):
            raise ValueError(f"Faults.battery_level must be None or an int 0..100, got {value!r}")
        super().__setattr__(name, value)
