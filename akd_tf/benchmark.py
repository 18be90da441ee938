"""Latency measurement records and the embedded ``local`` device (the host CPU).

:class:`BenchmarkResult` is the one record every backend returns (the host
here, Android's ``benchmark_model`` on phones later). The local backend runs a
``.tflite`` with one interpreter thread while the process is pinned to one CPU
core, the way phones are measured on one big core. Its defaults follow
``benchmark_model``: at least 1 warm-up run for at least 0.5 s, then at least
50 timed runs for at least 1 s (capped at ``max_secs``).
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from akd_tf.errors import InvalidInput
from akd_tf.interpreter import check_tflite_file, load_interpreter, make_interpreter

LOCAL_DEVICE = "local"


@dataclass(frozen=True)
class RunSettings:
    """How a measurement was taken (stored with every result)."""

    num_threads: int = 1
    num_runs: int = 50
    warmup_runs: int = 1
    min_secs: float = 1.0
    warmup_min_secs: float = 0.5
    max_secs: float = 150.0
    core: int | None = None  # CPU core the run was pinned to, None = not pinned
    runtime: str = ""  # interpreter or benchmark binary and its version
    # The timed runs split into this many repeats, repeat_gap_s apart (repeat_share): on the host each repeat
    # after the first on a fresh interpreter, on a phone each its own benchmark_model run within one farm job.
    # Repeats are added, up to max_extra_repeats, until the fastest repeat's minimum is matched within
    # settle_within by another's (wants_another_repeat): the latency was seen twice, not in one lucky or
    # unlucky stretch.
    repeats: int = 1
    repeat_gap_s: float = 0.0
    settle_within: float = 0.03
    max_extra_repeats: int = 3

    def __post_init__(self) -> None:
        for name in ("num_threads", "num_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.warmup_runs, bool) or not isinstance(self.warmup_runs, int) or self.warmup_runs < 0:
            raise InvalidInput(f"warmup_runs must be an int >= 0, got {self.warmup_runs!r}")
        for name in ("min_secs", "warmup_min_secs", "max_secs", "repeat_gap_s", "settle_within"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise InvalidInput(f"repeats must be an int >= 1, got {self.repeats!r}")
        if (isinstance(self.max_extra_repeats, bool) or not isinstance(self.max_extra_repeats, int)
                or self.max_extra_repeats < 0):
            raise InvalidInput(f"max_extra_repeats must be an int >= 0, got {self.max_extra_repeats!r}")


# How a whole model is measured (the table's micro-models have their own, latency_db.lut.LUT_SETTINGS):
# benchmark_model's defaults (50 runs, at least 1 s), in 3 repeats 0.5 s apart, on the host and on phones.
WHOLE_MODEL_SETTINGS = RunSettings(repeats=3, repeat_gap_s=0.5)


# Which statistic of a measurement's timed runs is "the latency" everywhere (the table, whole-model
# measurements, predictions, rewards): the minimum reproduced best on a shared host, 0.07-0.27x the
# median's run-to-run CV (benchmarks/estimators.py), and benchmark_model reports it on phones too.
LATENCY_STATISTIC = "min_us"


def latency_us(stats) -> float:
    """The latency (microseconds) of a measurement: its :data:`LATENCY_STATISTIC`. ``stats`` is a
    :class:`BenchmarkResult` or a stored row with the same statistics (a measurement, a table entry)."""
    return getattr(stats, LATENCY_STATISTIC)


def repeat_share(settings: RunSettings) -> tuple[int, float]:
    """(least timed runs, least seconds of timed runs) of each repeat: ``num_runs`` (rounded up, at least 1)
    and ``min_secs`` shared out over ``settings.repeats``."""
    return max(1, -(-settings.num_runs // settings.repeats)), settings.min_secs / settings.repeats


def repeats_settled(minimums_us, within: float) -> bool:
    """True once the fastest repeat's minimum is matched within ``within`` (a fraction) by another repeat's,
    or there is only one repeat."""
    if len(minimums_us) < 2:
        return True
    fastest, second = sorted(minimums_us)[:2]
    return second <= fastest * (1.0 + within)


def wants_another_repeat(minimums_us, settings: RunSettings) -> bool:
    """Whether a measurement whose repeats so far had these minimums (microseconds) takes one more: it has fewer
    than ``settings.repeats``, or it is not :func:`repeats_settled` within ``settle_within`` and has fewer than
    ``repeats + max_extra_repeats``. The one rule of the host (:func:`time_models`) and of phones
    (``devicefarm.runner``)."""
    done = len(minimums_us)
    return done < settings.repeats or (not repeats_settled(minimums_us, settings.settle_within)
                                       and done < settings.repeats + settings.max_extra_repeats)


def repeat_spread(minimums_us) -> float | None:
    """``max / min - 1`` of the repeats' minimums; None for fewer than two repeats."""
    return max(minimums_us) / min(minimums_us) - 1.0 if len(minimums_us) > 1 else None


@dataclass(frozen=True)
class BenchmarkResult:
    """Latency statistics of one model on one device, all in microseconds."""

    init_us: float
    first_inference_us: float
    warmup_mean_us: float
    median_us: float
    mean_us: float
    std_us: float
    min_us: float
    max_us: float
    p90_us: float | None  # None where the backend reports no percentiles (benchmark_model)
    count: int
    device: str
    settings: RunSettings = field(default_factory=RunSettings)
    raw_output: str = ""
    repeat_spread: float | None = None  # max / min - 1 of the repeats' minimums; None for a single repeat

    @classmethod
    def from_samples(cls, timed_us, *, init_us: float, first_inference_us: float, warmup_us, device: str,
                     settings: RunSettings, raw_output: str = "",
                     repeat_minimums_us: list[float] | None = None) -> "BenchmarkResult":
        """Summarise timed runs (microseconds, every repeat's pooled); ``warmup_us`` may be empty."""
        timed = np.asarray(timed_us, dtype=np.float64)
        if timed.size == 0:
            raise InvalidInput("a benchmark result needs at least one timed run")
        spread = repeat_spread(repeat_minimums_us or [])
        return cls(init_us=float(init_us), first_inference_us=float(first_inference_us),
                   warmup_mean_us=float(np.mean(warmup_us)) if len(warmup_us) else float("nan"),
                   median_us=float(np.median(timed)), mean_us=float(timed.mean()), std_us=float(timed.std()),
                   min_us=float(timed.min()), max_us=float(timed.max()), p90_us=float(np.percentile(timed, 90)),
                   count=int(timed.size), device=device, settings=settings, raw_output=raw_output,
                   repeat_spread=spread)

    @property
    def latency_ms(self) -> float:
        """The latency in milliseconds (:func:`latency_us`)."""
        return latency_us(self) / 1000.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BenchmarkResult":
        data = dict(data)
        data["settings"] = RunSettings(**data.get("settings", {}))
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown benchmark result fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def allowed_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def choose_core(core: int | str, cores, auto_core: int, *, forms: str, where: str) -> int:
    """``"auto"`` -> ``auto_core``; else ``core`` as an int that must be one of ``cores``.

    Errors name the accepted ``forms`` and ``where`` the cores are (shared by host and phones).
    """
    if core == "auto":
        return auto_core
    try:
        core = int(core)
    except (TypeError, ValueError):
        raise InvalidInput(f"core must be {forms}, got {core!r}") from None
    if core not in cores:
        raise InvalidInput(f"core {core} is not {where}: {sorted(cores)}")
    return core


def resolve_core(core: int | str | None) -> int | None:
    """``None``/"none": no pinning; "auto": the highest-numbered core this process may use; else that core."""
    if core is None or core == "none":
        return None
    cores = allowed_cores()
    return choose_core(core, cores, cores[-1], forms="an int, 'auto' or 'none'",
                       where="available to this process; available cores")


class _PinnedTo:
    """Pin the whole process to one core for the duration of a ``with`` block."""

    def __init__(self, core: int | None):
        self.core, self.saved = core, None

    def __enter__(self):
        if self.core is not None:
            self.saved = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {self.core})
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)


def _timed_invoke(interpreter) -> float:
    start = time.perf_counter_ns()
    interpreter.invoke()
    return (time.perf_counter_ns() - start) / 1000.0


def _random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=detail["shape"]).astype(dtype)


@dataclass(frozen=True)
class RawTimings:
    """Every timing of one benchmark protocol run, in microseconds (what ``benchmark_model`` measures)."""

    init_us: float
    first_inference_us: float
    warmup_us: list[float]
    timed_us: list[float]  # every repeat's runs, in order
    repeat_minimums_us: list[float]


def time_model(model_path: str | os.PathLike, settings: RunSettings, seed: int = 0) -> RawTimings:
    """Run the benchmark protocol on a ``.tflite`` in this process (no pinning; GC off while timing).

    Load (timed as init), one first inference, warm-up runs, then timed runs; inputs are random
    values of each input's dtype, drawn from ``seed``. Each repeat after the first loads the model
    afresh (with one untimed run), so the repeats also sample where the interpreter's buffers land.
    """
    return time_models([model_path], settings, seed)[0]


@dataclass
class _Timing:
    """One model's timings so far, in a batch timed by :func:`time_models`."""

    path: str | os.PathLike
    init_us: float = 0.0
    first_us: float = 0.0
    warmup: list[float] = field(default_factory=list)
    repeats: list[list[float]] = field(default_factory=list)

    def wants_more(self, settings: RunSettings) -> bool:
        """:func:`wants_another_repeat` of the repeats so far."""
        return wants_another_repeat([min(r) for r in self.repeats], settings)


def time_models(model_paths, settings: RunSettings, seed: int = 0) -> list[RawTimings]:
    """:func:`time_model` for several models, their repeats interleaved: round ``r`` times repeat ``r`` of
    every model that wants one, rounds ``repeat_gap_s`` apart. A burst of interference from other
    tenants then lands on one repeat of several models instead of every repeat of one, and the minimum
    over a model's repeats steps around it. One model is the plain protocol."""
    runs, secs = repeat_share(settings)
    timings = [_Timing(path) for path in model_paths]
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed run is noise, not model latency
    try:
        for timing in timings:  # round 0: load, first inference, warm-up, the first repeat
            start = time.perf_counter_ns()
            interpreter = _loaded(timing.path, settings, seed)
            timing.init_us = (time.perf_counter_ns() - start) / 1000.0
            timing.first_us = _timed_invoke(interpreter)
            timing.warmup = _run_until(interpreter, settings.warmup_runs, settings.warmup_min_secs, settings.max_secs)
            timing.repeats.append(_run_until(interpreter, runs, secs, settings.max_secs))
            del interpreter
        while any(t.wants_more(settings) for t in timings):
            if settings.repeat_gap_s:
                time.sleep(settings.repeat_gap_s)
            for timing in timings:
                if timing.wants_more(settings):
                    interpreter = _loaded(timing.path, settings, seed)  # a fresh interpreter, run once untimed
                    interpreter.invoke()
                    timing.repeats.append(_run_until(interpreter, runs, secs, settings.max_secs))
                    del interpreter
    finally:
        if gc_was_enabled:
            gc.enable()
    return [RawTimings(t.init_us, t.first_us, t.warmup, [x for r in t.repeats for x in r],
                       [min(r) for r in t.repeats]) for t in timings]


def _loaded(model_path, settings: RunSettings, seed: int):
    """An interpreter of the model with its inputs set to random values drawn from ``seed``."""
    interpreter = make_interpreter(model_path, num_threads=settings.num_threads)
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
    return interpreter


def run_local_benchmark(model_path: str | os.PathLike, settings: RunSettings | None = None,
                        core: int | str | None = "auto", seed: int = 0) -> BenchmarkResult:
    """Measure a ``.tflite`` file on the host CPU (see the module docstring for the protocol)."""
    return run_local_benchmarks([model_path], settings, core, seed)[0]


def run_local_benchmarks(model_paths, settings: RunSettings | None = None, core: int | str | None = "auto",
                         seed: int = 0) -> list[BenchmarkResult]:
    """Measure several ``.tflite`` files on the host CPU, their repeats interleaved (:func:`time_models`)."""
    base = settings or RunSettings()
    model_paths = [check_tflite_file(path) for path in model_paths]
    pinned = resolve_core(core)
    settings = RunSettings(**{**asdict(base), "core": pinned, "runtime": load_interpreter().label})
    with _PinnedTo(pinned):
        raws = time_models(model_paths, settings, seed)
    return [BenchmarkResult.from_samples(raw.timed_us, init_us=raw.init_us, first_inference_us=raw.first_inference_us,
                                         warmup_us=raw.warmup_us, device=LOCAL_DEVICE, settings=settings,
                                         repeat_minimums_us=raw.repeat_minimums_us) for raw in raws]


def _run_until(interpreter, min_runs: int, min_secs: float, max_secs: float) -> list[float]:
    """Invoke at least ``min_runs`` times and for at least ``min_secs``, stopping at ``max_secs``."""
    samples: list[float] = []
    deadline_min = time.perf_counter() + min_secs
    deadline_max = time.perf_counter() + max_secs
    while len(samples) < min_runs or time.perf_counter() < deadline_min:
        samples.append(_timed_invoke(interpreter))
        if time.perf_counter() >= deadline_max and samples:
            break
    return samples


def describe(result: BenchmarkResult, model: str | os.PathLike | None = None) -> str:
    """Human-readable multi-line summary of a result."""
    s = result.settings
    where = f"core {s.core}" if s.core is not None else "not pinned"
    lines = [
        f"model:            {Path(model).name}" if model else None,
        f"device:           {result.device} ({s.runtime}, {s.num_threads} thread(s), {where})",
        f"runs:             {result.count} timed, warm-up mean {result.warmup_mean_us:.1f} us",
        f"init:             {result.init_us:.1f} us, first inference {result.first_inference_us:.1f} us",
        f"latency (us):     median {result.median_us:.1f}  mean {result.mean_us:.1f}  std {result.std_us:.1f}  "
        f"min {result.min_us:.1f}  max {result.max_us:.1f}  "
        f"p90 {'n/a' if result.p90_us is None else format(result.p90_us, '.1f')}",
    ]
    return "\n".join(line for line in lines if line is not None)
