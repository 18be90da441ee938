"""Accuracy of the latency predictor on held-out random architectures, on the host.

Needs the table built by benchmarks/lut_build.py (same --db, resolution and
classes). Measures --n random archs end to end (stored, so a rerun reuses
them), fits the calibration on half and reports the other half, against the
uncalibrated LUT sum as the baseline.

    .venv/bin/python benchmarks/predictor_accuracy.py [--n 60 --seed 1 --resolution 32 --classes 10 --db URL]

The headline (share of held-out archs within +-10%, goal >= 99%) is printed last.
"""

from __future__ import annotations

import argparse

from akd_tf.space import get_space
from latency_db.calibrate import calibrate
from akd_tf.target import ModelTarget
from latency_db.store import open_store
from table_args import add_table_arguments, ensure_cache

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    add_table_arguments(parser)
    args = parser.parse_args()
    store = open_store(args.db)
    done = [0]

    def progress(_arch):
        done[0] += 1
        if done[0] % 10 == 0:
            print(f"  measured {done[0]}/{args.n} archs", flush=True)

    report = calibrate(store, "local", get_space(), ModelTarget(args.resolution, args.classes), args.n,
                       seed=args.seed, progress=progress)
    print(f"calibration: latency_ms = {report.scale:.4f} x LUT sum + {report.ms_per_weight_mb:.4f} x weight MB + "
          f"{report.offset_ms:.4f} (fit on {report.n_fit} archs)")
    print(f"uncalibrated LUT sum {report.uncalibrated.summary()}")
    print(f"calibrated           {report.calibrated.summary()}")
    print(f"held-out archs within +-10%: {report.calibrated.within_10_pct:.1%} (goal >= 99%)")


if __name__ == "__main__":
    main()
