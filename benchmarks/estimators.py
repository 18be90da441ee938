"""Which summary of timed runs reproduces best on this host: an estimator study.

Several models (random archs of the default space, at 32x32 and 96x96) are loaded once each, then
timed in short repeats, round-robin over the models, so every burst of interference on the host
hits several models' repeats rather than one model's whole measurement. The repeats are grouped into
--sessions consecutive sessions of --repeats repeats each; a session stands for one measurement of the
model, summarised by each estimator:

* ``mean`` / ``median`` / ``min`` / ``p10`` of all the session's runs pooled (today's protocol takes the
  median of one long repeat);
* ``median of repeat medians``, ``min of repeat medians``, ``median of repeat p10s``: the summary of
  each short repeat, then a robust summary across repeats (Chen & Revels 2016 argue for the minimum or
  a low percentile under bursty interference).

For each estimator and model, the coefficient of variation (CV) of its value over the sessions, and
whether the sessions agree within 5% (max/min - 1, MLPerf Mobile's rule). Baseline in the same
process: the pooled median (what one long repeat gives).

    .venv/bin/python benchmarks/estimators.py [--models 8 --sessions 5 --repeats 5 --repeat-secs 0.1]

The headline (the estimator with the lowest median CV, and its CV against the baseline's) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import akd_tf  # noqa: F401
from akd_tf import export
from akd_tf.benchmark import _PinnedTo, _random_input, _timed_invoke, resolve_core
from akd_tf.interpreter import make_interpreter
from akd_tf.space import get_space

ESTIMATORS = {
    "pooled mean": lambda repeats: float(np.mean(np.concatenate(repeats))),
    "pooled median": lambda repeats: float(np.median(np.concatenate(repeats))),
    "pooled min": lambda repeats: float(np.min(np.concatenate(repeats))),
    "pooled p10": lambda repeats: float(np.percentile(np.concatenate(repeats), 10)),
    "median of repeat medians": lambda repeats: float(np.median([np.median(r) for r in repeats])),
    "min of repeat medians": lambda repeats: float(np.min([np.median(r) for r in repeats])),
    "median of repeat p10s": lambda repeats: float(np.median([np.percentile(r, 10) for r in repeats])),
}
BASELINE = "pooled median"


def timed_repeat(interpreter, min_runs: int, secs: float) -> np.ndarray:
    """One short repeat: at least ``min_runs`` invocations and ``secs`` seconds, in microseconds."""
    samples, deadline = [], time.perf_counter() + secs
    while len(samples) < min_runs or time.perf_counter() < deadline:
        samples.append(_timed_invoke(interpreter))
    return np.asarray(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="models, half at 32x32 and half at 96x96")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="repeats per session")
    parser.add_argument("--repeat-secs", type=float, default=0.1)
    parser.add_argument("--min-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    space = get_space()
    archs = space.sample_many(args.models, args.seed)
    shapes = [(32, 32, 3) if i % 2 == 0 else (96, 96, 3) for i in range(args.models)]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        interpreters = []
        for i, (arch, shape) in enumerate(zip(archs, shapes)):
            path = Path(tmp) / f"m{i}.tflite"
            export.export_tflite(export.build_for_export(arch, shape, 10, seed=i), path)
            interpreter = make_interpreter(path, num_threads=1)
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], _random_input(detail, rng))
            timed_repeat(interpreter, 5, 0.05)  # warm-up
            interpreters.append(interpreter)
        runs: list[list[list[np.ndarray]]] = [[[] for _ in range(args.sessions)] for _ in interpreters]
        started = time.perf_counter()
        with _PinnedTo(resolve_core("auto")):
            for session in range(args.sessions):
                for _ in range(args.repeats):
                    for m, interpreter in enumerate(interpreters):  # round-robin: a burst hits several models
                        runs[m][session].append(timed_repeat(interpreter, args.min_runs, args.repeat_secs))
        seconds = time.perf_counter() - started
    print(f"{args.models} models x {args.sessions} sessions x {args.repeats} repeats of >= {args.repeat_secs} s "
          f"(>= {args.min_runs} runs), round-robin, 1 thread pinned; {seconds:.0f} s of timing")
    cvs: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    agree: dict[str, int] = {name: 0 for name in ESTIMATORS}
    for m in range(args.models):
        for name, estimate in ESTIMATORS.items():
            values = [estimate(session) for session in runs[m]]
            cvs[name].append(100.0 * statistics.pstdev(values) / statistics.mean(values))
            agree[name] += max(values) / min(values) - 1.0 <= 0.05
    print(f"{'estimator':<26} {'median CV':>10} {'worst CV':>9} {'sessions agree within 5%':>26}")
    for name in ESTIMATORS:
        print(f"{name:<26} {statistics.median(cvs[name]):9.2f}% {max(cvs[name]):8.2f}% "
              f"{agree[name]:>12} of {args.models} models")
    best = min(ESTIMATORS, key=lambda name: statistics.median(cvs[name]))
    print(f"lowest median CV: {best} {statistics.median(cvs[best]):.2f}% "
          f"(baseline {BASELINE} {statistics.median(cvs[BASELINE]):.2f}%, ratio "
          f"{statistics.median(cvs[best]) / statistics.median(cvs[BASELINE]):.2f})")


if __name__ == "__main__":
    main()
