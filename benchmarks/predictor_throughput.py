"""Batch prediction throughput: architectures priced per second from the in-memory table.

Needs the table built by benchmarks/lut_build.py. Loads it once, then prices
--n random archs with the predictor (block results memoized) and, as the
baseline in the same process, with a plain sum over each arch's full layer
plan.

    .venv/bin/python benchmarks/predictor_throughput.py [--n 20000 --resolution 32 --classes 10 --db URL]

The headline (archs per second, goal >= 10,000) is printed last.
"""

from __future__ import annotations

import argparse
import time

from akd_tf.plan import plan_network
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.predictor import LutPredictor
from latency_db.store import open_store
from table_args import add_table_arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    add_table_arguments(parser)
    args = parser.parse_args()
    space, target = get_space(), ModelTarget(args.resolution, args.classes)
    start = time.perf_counter()
    predictor = LutPredictor.load(open_store(args.db), "local", space, target)
    load_s = time.perf_counter() - start
    archs = space.sample_many(args.n, seed=123)

    start = time.perf_counter()
    naive = [sum(predictor.table_us[op.key] for op in plan_network(a, target.input_shape, target.classes).operators)
             for a in archs[: args.n // 10]]
    naive_rate = len(naive) / (time.perf_counter() - start)

    start = time.perf_counter()
    fast = predictor.predict_many_ms(archs)
    rate = len(archs) / (time.perf_counter() - start)
    # the paths must agree where they overlap (checked after timing): table sums, and batch against single
    worst = max(abs(predictor.lut_sum_us(a) - n) for a, n in zip(archs, naive))
    if worst > 1e-6:
        raise RuntimeError(f"memoized and plain LUT sums differ by up to {worst} us")
    worst = max(abs(predictor.predict_ms(a) - f) for a, f in zip(archs[:100], fast[:100]))
    if worst > 1e-9:
        raise RuntimeError(f"batch and single predictions differ by up to {worst} ms")
    print(f"table load: {load_s * 1000:.0f} ms for {len(predictor.table_us)} entries")
    print(f"baseline, full plan per arch: {naive_rate:,.0f} archs/s")
    cal = predictor.calibration
    applied = "without calibration" if cal is None else f"with calibration #{cal.id}, {cal.method}"
    print(f"memoized predictor ({applied}): {rate / naive_rate:.1f}x the baseline")
    print(f"batch prediction throughput: {rate:,.0f} archs/s over {args.n:,} archs (goal >= 10,000)")


if __name__ == "__main__":
    main()
