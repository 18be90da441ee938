"""Time to build the whole latency table of the default space on the host.

Builds every operator key of `mnasnet` at the demo resolution into a
benchmark database (resuming if it already holds some), with conversion
workers, and as a baseline in the same process measures the serial path
(no workers) on the first keys in a throwaway database.

    .venv/bin/python benchmarks/lut_build.py [--resolution 32 --classes 10 --db URL]

The headline (minutes for the whole table, goal <= 10) is printed last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from akd_tf.space import get_space
from latency_db.lut import build_lut, plan_build
from akd_tf.target import ModelTarget
from latency_db.store import open_store
from table_args import add_table_arguments, ensure_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_table_arguments(parser)
    parser.add_argument("--baseline-keys", type=int, default=40)
    args = parser.parse_args()
    ensure_cache()
    space, target = get_space(), ModelTarget(args.resolution, args.classes)
    workers = len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as tmp:
        scratch = open_store(f"sqlite:///{tmp}/baseline.db")
        start = time.perf_counter()
        build_lut(scratch, "local", space, target, limit=args.baseline_keys, workers=0)
        serial_per_key = (time.perf_counter() - start) / args.baseline_keys
        scratch.close()
    print(f"baseline, no workers: {serial_per_key:.3f} s per key over {args.baseline_keys} keys", flush=True)

    store = open_store(args.db)
    plan = plan_build(store, "local", space, target)
    operators, missing = plan.operators, plan.missing
    print(f"{len(operators)} keys at {args.resolution}x{args.resolution}, {args.classes} classes; "
          f"{len(missing)} to measure with {workers} conversion worker(s)", flush=True)
    done = [0]

    def progress(_op):
        done[0] += 1
        if done[0] % 200 == 0:
            print(f"  {done[0]}/{len(missing)} keys, {time.perf_counter() - start:.0f} s", flush=True)

    start = time.perf_counter()
    summary = build_lut(store, "local", space, target, workers=workers, progress=progress)
    per_key = summary.seconds / max(1, summary.measured)
    print(f"measured {summary.measured} keys in {summary.seconds:.1f} s: {per_key:.3f} s per key, "
          f"{serial_per_key / per_key:.2f}x the serial rate")
    whole_minutes = len(operators) * per_key / 60
    print(f"whole table, {len(operators)} keys: {whole_minutes:.1f} min (goal <= 10 min)")


if __name__ == "__main__":
    main()
