"""Argument checks shared by the job queue's modules: each returns the checked value or raises ValueError
naming the argument and the value it got."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from akd_tf.errors import InvalidInput
from latency_db.schema import utcnow


def utc(now: datetime | None) -> datetime:
    """``now`` as aware UTC; None means the clock. Naive datetimes are refused."""
    if now is None:
        return utcnow()
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidInput(f"now must be a timezone-aware datetime, got {now!r}")
    return now.astimezone(timezone.utc)


def positive_seconds(name: str, value) -> float:
    """A finite number of seconds > 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def positive_int(name: str, value) -> int:
    """An int >= 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be an int >= 1, got {value!r}")
    return value


def bounded_name(what: str, value, max_len: int) -> str:
    """A non-blank string of at most ``max_len`` characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"{what} must be a non-empty string of at most {max_len} characters, got {value!r}")
    return value
