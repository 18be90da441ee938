"""Do whole-model measurements reproduce? Random architectures, each measured --tries times on the host.

Each architecture is exported once. Every try measures all of them with the whole-model protocol
(1 thread pinned, 50 runs / 1 s in 3 repeats on fresh interpreters) in two ways, one after the other
so both see the same host:

* one after another, each model's repeats back to back (`akd-tf latency measure --tries`): the baseline;
* as one batch with the repeats interleaved (how `calibrate` and the search measure several archs).

An architecture reproduces when its tries' latencies agree within 5% (max/min - 1, MLPerf Mobile's
rule). Also reported: the same rule on the sequential tries' medians (the statistic used before the minimum).

With ``--candidate-repeats R`` every try also measures the batch interleaved with a candidate protocol (R repeats
on fresh interpreters, ``--candidate-gap`` seconds apart, the same 1 s of timed runs shared out), so a protocol
change is judged against today's in the same process on the same host.

    .venv/bin/python benchmarks/reproducibility.py [--archs 20 --tries 5 --resolution 32 --seed 2026]

The headline (share of architectures whose interleaved tries reproduce, goal >= 95%) is printed last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from akd_tf.benchmark import WHOLE_MODEL_SETTINGS, run_local_benchmark, run_local_benchmarks
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.measure import export_untrained
from latency_db.reproducibility import AGREEMENT


def spread(values) -> float:
    return max(values) / min(values) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--candidate-repeats", type=int, default=None,
                        help="also measure each try with this many repeats (interleaved)")
    parser.add_argument("--candidate-gap", type=float, default=WHOLE_MODEL_SETTINGS.repeat_gap_s,
                        help="seconds between the candidate's repeats")
    args = parser.parse_args()
    candidate = (replace(WHOLE_MODEL_SETTINGS, repeats=args.candidate_repeats, repeat_gap_s=args.candidate_gap)
                 if args.candidate_repeats else None)
    target = ModelTarget(args.resolution, args.classes)
    archs = get_space().sample_many(args.archs, args.seed)
    started = time.perf_counter()
    sequential, medians, interleaved, candidates = [], [], [], []
    seconds = {"today": 0.0, "candidate": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_untrained(a, target, Path(tmp) / f"arch{i}.tflite", 0).path for i, a in enumerate(archs)]
        for number in range(1, args.tries + 1):
            results = [run_local_benchmark(path, WHOLE_MODEL_SETTINGS) for path in paths]
            sequential.append([r.min_us / 1000 for r in results])
            medians.append([r.median_us / 1000 for r in results])
            began = time.perf_counter()
            interleaved.append([r.min_us / 1000 for r in run_local_benchmarks(paths, WHOLE_MODEL_SETTINGS)])
            seconds["today"] += time.perf_counter() - began
            if candidate:
                began = time.perf_counter()
                candidates.append([r.min_us / 1000 for r in run_local_benchmarks(paths, candidate)])
                seconds["candidate"] += time.perf_counter() - began
            print(f"try {number} done, {time.perf_counter() - started:.0f} s", flush=True)
    sequential, medians, interleaved = (np.array(v).T for v in (sequential, medians, interleaved))
    for number, (seq, inter) in enumerate(zip(sequential, interleaved), start=1):
        print(f"arch {number:2d}: one after another {seq.min():.3f}-{seq.max():.3f} ms, spread {spread(seq):6.2%} "
              f"({'ok' if spread(seq) <= AGREEMENT else 'NO'}); interleaved {inter.min():.3f}-{inter.max():.3f} ms, "
              f"spread {spread(inter):6.2%} ({'ok' if spread(inter) <= AGREEMENT else 'NO'})")
    ok_sequential = sum(spread(v) <= AGREEMENT for v in sequential)
    ok_medians = sum(spread(v) <= AGREEMENT for v in medians)
    ok_interleaved = sum(spread(v) <= AGREEMENT for v in interleaved)
    agreement = np.median(np.abs(interleaved.min(axis=1) / sequential.min(axis=1) - 1))
    print(f"{args.archs} archs x {args.tries} tries at {args.resolution}x{args.resolution} in "
          f"{time.perf_counter() - started:.0f} s; the two ways' best latencies differ by {agreement:.2%} (median)")
    print(f"reproduce within {AGREEMENT:.0%}, one after another: {ok_sequential} of {args.archs}; "
          f"judged by the median instead: {ok_medians} of {args.archs}")
    if candidate:
        candidates = np.array(candidates).T
        for number, values in enumerate(candidates, start=1):
            if spread(values) > AGREEMENT:
                print(f"candidate, arch {number:2d}: {values.min():.3f}-{values.max():.3f} ms, "
                      f"spread {spread(values):6.2%} (NO)")
        ok_candidate = sum(spread(v) <= AGREEMENT for v in candidates)
        shift = np.median(candidates.min(axis=1) / interleaved.min(axis=1) - 1)
        print(f"candidate ({candidate.repeats} repeats {candidate.repeat_gap_s:g} s apart), interleaved: "
              f"{ok_candidate} of {args.archs} reproduce; {seconds['candidate'] / seconds['today']:.2f}x today's "
              f"measuring time ({seconds['candidate']:.0f} vs {seconds['today']:.0f} s); best latencies differ by "
              f"{shift:+.2%} (median)")
    print(f"reproduce within {AGREEMENT:.0%} over {args.tries} tries, interleaved: {ok_interleaved} of {args.archs} "
          f"({ok_interleaved / args.archs:.0%}; goal >= 95%)")


if __name__ == "__main__":
    main()
