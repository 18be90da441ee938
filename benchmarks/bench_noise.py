"""Run-to-run noise of the host benchmark: one model measured 5 times.

Prints the coefficient of variation (CV) of the 5 medians with the default
protocol (1 thread, pinned to one core, 50 runs / 1 s), and as a baseline in
the same process the same protocol without pinning.

    .venv/bin/python benchmarks/bench_noise.py [--repeats 5] [--resolution 96]

The headline (CV of medians, pinned; goal <= 3%) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import akd_tf  # noqa: F401
from akd_tf import export
from akd_tf.benchmark import RunSettings, run_local_benchmark
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
        medians = {}
        for label, core in (("unpinned", "none"), ("pinned", "auto")):
            medians[label] = [run_local_benchmark(path, RunSettings(), core=core).median_us
                              for _ in range(args.repeats)]
            print(f"{label:<9} medians (us): " + ", ".join(f"{m:.1f}" for m in medians[label])
                  + f"   CV {cv_percent(medians[label]):.2f}%", flush=True)
    print(f"arch {arch.to_string()} at {args.resolution}x{args.resolution}")
    print(f"CV ratio pinned / unpinned: {cv_percent(medians['pinned']) / cv_percent(medians['unpinned']):.2f}")
    print(f"CV of {args.repeats} medians, 1 thread pinned to one core: {cv_percent(medians['pinned']):.2f}% (goal <= 3%)")


if __name__ == "__main__":
    main()
