"""Do whole-model measurements reproduce? Random architectures, each measured --tries times on the host.

Each architecture is exported once and measured --tries times in a row with the default protocol
(`akd-tf latency measure --tries`, 1 thread pinned, 50 runs / 1 s); it reproduces when its tries'
latencies agree within 5% (max/min - 1, MLPerf Mobile's rule). The baseline, from the same
measurements: the same rule applied to the tries' medians (the statistic used before the minimum).

    .venv/bin/python benchmarks/reproducibility.py [--archs 20 --tries 5 --resolution 32 --seed 2026]

The headline (share of architectures that reproduce, goal >= 95%) is printed last.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.reproducibility import AGREEMENT, measure_tries
from latency_db.schema import Measurement
from latency_db.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    target = ModelTarget(args.resolution, args.classes)
    archs = get_space().sample_many(args.archs, args.seed)
    reproduced, reproduced_by_median, started = 0, 0, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/reproducibility.db")
        for number, arch in enumerate(archs, start=1):
            tries = measure_tries(store, "local", arch, target, args.tries)
            with store.session() as session:
                medians = [session.get(Measurement, i).median_us for i in tries.measurement_ids]
            median_spread = max(medians) / min(medians) - 1
            reproduced += tries.agree
            reproduced_by_median += median_spread <= AGREEMENT
            print(f"arch {number:2d}: latencies {min(tries.latencies_ms):.3f}-{max(tries.latencies_ms):.3f} ms, "
                  f"spread {tries.spread:6.2%} ({'ok' if tries.agree else 'NO'}); medians spread "
                  f"{median_spread:6.2%}", flush=True)
    print(f"{args.archs} archs x {args.tries} tries at {args.resolution}x{args.resolution} in "
          f"{time.perf_counter() - started:.0f} s; judged by the median instead: {reproduced_by_median} of "
          f"{args.archs} reproduce")
    print(f"reproduce within {AGREEMENT:.0%} over {args.tries} tries: {reproduced} of {args.archs} "
          f"({reproduced / args.archs:.0%}; goal >= 95%)")


if __name__ == "__main__":
    main()
