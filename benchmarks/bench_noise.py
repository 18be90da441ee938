"""Run-to-run noise of the host benchmark: one model measured 5 times.

Prints the coefficient of variation (CV) over the 5 measurements of the latency
(:data:`akd_tf.benchmark.LATENCY_STATISTIC`, the minimum of the timed runs) and of
the median, with the default protocol (1 thread, pinned to one core, 50 runs /
1 s), and as a baseline in the same process the same protocol without pinning.

    .venv/bin/python benchmarks/bench_noise.py [--repeats 5] [--resolution 96]

The headline (CV of the latency, pinned; goal <= 2%) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import akd_tf  # noqa: F401
from akd_tf import export
from akd_tf.benchmark import LATENCY_STATISTIC, RunSettings, latency_us, run_local_benchmark
from akd_tf.space import get_space


def cv_percent(values) -> float:
    return 100.0 * statistics.pstdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    arch = get_space().sample_many(1, args.seed)[0]
    shape = (args.resolution, args.resolution, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        export.export_tflite(export.build_for_export(arch, shape, 10), path)
        latencies, medians = {}, {}
        for label, core in (("unpinned", "none"), ("pinned", "auto")):
            results = [run_local_benchmark(path, RunSettings(), core=core) for _ in range(args.repeats)]
            latencies[label] = [latency_us(r) for r in results]
            medians[label] = [r.median_us for r in results]
            print(f"{label:<9} latencies (us): " + ", ".join(f"{m:.1f}" for m in latencies[label])
                  + f"   CV {cv_percent(latencies[label]):.2f}%; medians CV {cv_percent(medians[label]):.2f}%",
                  flush=True)
    print(f"arch {arch.to_string()} at {args.resolution}x{args.resolution}; latency = {LATENCY_STATISTIC}")
    print(f"CV of the median, pinned: {cv_percent(medians['pinned']):.2f}% "
          f"(the latency's CV is {cv_percent(latencies['pinned']) / cv_percent(medians['pinned']):.2f}x it)")
    print(f"CV ratio pinned / unpinned: {cv_percent(latencies['pinned']) / cv_percent(latencies['unpinned']):.2f}")
    print(f"CV of {args.repeats} latencies, 1 thread pinned to one core: {cv_percent(latencies['pinned']):.2f}% "
          f"(goal <= 2%)")


if __name__ == "__main__":
    main()
