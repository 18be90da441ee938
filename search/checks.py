"""Argument checks shared by the search package: each returns the value or raises ``ValueError`` quoting it."""

from __future__ import annotations

import math

import numpy as np

from akd_tf.errors import InvalidInput


def check_int(label: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else ``ValueError`` quoting it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInput(f"{label} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_number(label: str, value, low: float, high: float = math.inf, *, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with ``low_open``), else ``ValueError``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        if math.isinf(high):
            bounds = f"{'>' if low_open else '>='} {low}"
        else:
            bounds = f"in {'(' if low_open else '['}{low}, {high}]"
        raise InvalidInput(f"{label} must be a finite number {bounds}, got {value!r}")
    return float(value)


def check_reward(value) -> float:
    """``value`` as a float, else ``ValueError``: rewards must be finite numbers (a failed child's is 0.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise InvalidInput(f"a reward must be a finite number, got {value!r}")
    return float(value)
