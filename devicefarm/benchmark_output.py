"""Parse what Android's ``benchmark_model`` prints into a :class:`akd_tf.benchmark.BenchmarkResult`.

``benchmark_model`` prints one statistics line per phase (warm-up, then timed) in one of the forms of
TensorFlow's statistics printer::

    count=50 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=66
    count=1 curr=2650                    (a single run)
    count=12 curr=2650(all same)         (every run took the same time)
    count=0                              (no run in that phase)

and a summary line in one of three forms, depending on the release::

    Inference timings in us: Init: 12345, First inference: 3812, Warmup (avg): 2710.45, Inference (avg): 2689.1
    Average inference timings in us: Warmup: 2710.45, Init: 12345, Inference: 2689.1
    Average inference timings in us: Warmup: 2710.45, Init: 12345, no stats: 2689

Recent builds prefix every line with a log tag (``INFO: ``). The timed phase is the last statistics line.
``benchmark_model`` reports the mean, not the median or percentiles, so unless a build prints
``median=``/``p90=`` tokens the result's ``median_us`` holds the mean and ``p90_us`` is ``None``.
The raw text is always kept.
"""

from __future__ import annotations

import math
import re

from akd_tf.benchmark import BenchmarkResult, RunSettings
from akd_tf.errors import DeviceError


class BenchmarkOutputError(DeviceError, ValueError):
    """``benchmark_model`` output that holds no usable timings; ``raw_output`` keeps the text."""

    def __init__(self, message: str, raw_output: str):
        super().__init__(message)
        self.raw_output = raw_output


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_ONLY = re.compile(rf"^{_NUMBER}$")
_STATS_LINE = re.compile(r"^(?:.*?[:\s])?(count=.*?)\s*$")  # any log prefix ("INFO: ")
_ALL_SAME = "(all same)"
_FLOAT = r"(?:[-+]?(?:nan|inf)|" + _NUMBER + ")"  # an empty phase's average prints as nan
_RECENT = re.compile(rf"Inference timings in us:\s*Init:\s*({_FLOAT}),\s*First inference:\s*({_FLOAT}),"
                     rf"\s*Warmup \(avg\):\s*({_FLOAT}),\s*Inference \(avg\):\s*({_FLOAT})", re.IGNORECASE)
_OLDER = re.compile(rf"Average inference timings in us:\s*Warmup:\s*({_FLOAT}),\s*Init:\s*({_FLOAT}),"
                    rf"\s*(?:Inference|no stats):\s*({_FLOAT})", re.IGNORECASE)
_ERROR_LINE = re.compile(r"^(?:ERROR|E tflite|Failed|.*\bfailed\b|.*\bAborted\b).*$", re.MULTILINE | re.IGNORECASE)
_STAT_KEYS = ("first", "curr", "min", "max", "avg", "std")


def _phase(line: str, text: str) -> dict[str, float]:
    """One statistics line as numbers, every printer form filled out to count, first, curr, min, max, avg, std
    (a single run or identical runs: all equal to curr, std 0; an empty phase: count 0 alone)."""
    body = line[:-len(_ALL_SAME)] if line.endswith(_ALL_SAME) else line
    stats: dict[str, float] = {}
    for token in body.split():
        key, sep, value = token.partition("=")
        if not sep or not key or not _NUMBER_ONLY.match(value):
            raise _fail(f"malformed statistics token {token!r} in {line!r}", text)
        stats[key] = float(value)
    count = stats.get("count")
    if count is None or count != int(count) or count < 0:
        raise _fail(f"statistics line {line!r} has no run count", text)
    if count >= 1 and set(stats) == {"count", "curr"}:  # a single run, or every run the same
        curr = stats["curr"]
        stats.update(first=curr, min=curr, max=curr, avg=curr, std=0.0)
    return stats


def _stats_lines(text: str) -> list[dict[str, float]]:
    return [_phase(match.group(1), text) for match in map(_STATS_LINE.match, text.splitlines()) if match]


def _number(value: str) -> float:
    return float(value.lower().replace("-nan", "nan"))


def _fail(reason: str, text: str) -> BenchmarkOutputError:
    error = _ERROR_LINE.search(text)
    detail = f"; the output says: {error.group(0).strip()!r}" if error else ""
    return BenchmarkOutputError(f"unparseable benchmark_model output: {reason}{detail}", text)


def parse_benchmark_output(text: str, *, device: str, settings: RunSettings) -> BenchmarkResult:
    """The result of one ``benchmark_model`` run; ``BenchmarkOutputError`` names what is missing."""
    stats = _stats_lines(text)
    if not stats:
        raise _fail("no 'count=... avg=... std=...' statistics line", text)
    timed = stats[-1]
    if timed["count"] < 1:
        raise _fail("the timed phase reports count=0", text)
    missing = [key for key in _STAT_KEYS if key not in timed]
    if missing:
        raise _fail(f"the timed-phase statistics line lacks {', '.join(missing)}", text)
    warmup = stats[-2] if len(stats) >= 2 else None

    recent, older = _RECENT.search(text), _OLDER.search(text)
    if recent:
        init_us, first_us, warmup_avg, inference_avg = (_number(g) for g in recent.groups())
    elif older:
        warmup_avg, init_us, inference_avg = (_number(g) for g in older.groups())
        first_us = warmup["first"] if warmup and warmup["count"] >= 1 else timed["first"]
    else:
        raise _fail("no 'Inference timings in us' or 'Average inference timings in us' summary line", text)
    if not math.isclose(inference_avg, timed["avg"], rel_tol=1e-3, abs_tol=1.0):
        raise _fail(f"the summary's inference average {inference_avg:g} us disagrees with the timed-phase "
                    f"line's avg={timed['avg']:g}", text)
    for name, value in (("init", init_us), ("first inference", first_us), ("inference", timed["avg"])):
        if not math.isfinite(value) or value < 0:
            raise _fail(f"{name} time {value!r} is not a non-negative number", text)

    return BenchmarkResult(
        init_us=init_us, first_inference_us=first_us, warmup_mean_us=warmup_avg,
        median_us=timed.get("median", timed["avg"]), mean_us=timed["avg"], std_us=timed["std"],
        min_us=timed["min"], max_us=timed["max"], p90_us=timed.get("p90"), count=int(timed["count"]),
        device=device, settings=settings, raw_output=text)
