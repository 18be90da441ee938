"""Seconds from an architecture to a measured .tflite, in one warm process.

For N random architectures (seeded) this times every stage of the path that
`akd-tf export --arch` + `akd-tf bench` take: Keras build, weight preparation
(BatchNorm calibration), conversion through the fast no-trackable path, the
parity check, and a short host measurement. As a baseline in the same
process it converts each model again with `TFLiteConverter.from_keras_model`.

    .venv/bin/python benchmarks/export_speed.py [--n 10] [--resolution 96] [--classes 10]

The headline (seconds per architecture, goal <= 1 s) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import akd_tf  # noqa: F401  (configures TensorFlow first)
import tensorflow as tf
import tf_keras as keras

from akd_tf import export
from akd_tf.benchmark import RunSettings, run_local_benchmark
from akd_tf.models import build_student
from akd_tf.space import get_space

STAGES = ("build", "prepare", "convert", "parity", "measure")
MEASURE = RunSettings(num_runs=20, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0)


def from_keras_model_seconds(model) -> float:
    start = time.perf_counter()
    with export._quiet_converter():
        tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = (args.resolution, args.resolution, 3)
    space = get_space()
    archs = space.sample_many(args.n + 1, args.seed)
    warm, archs = archs[0], archs[1:]
    times = {stage: [] for stage in STAGES}
    baseline = []
    with tempfile.TemporaryDirectory() as tmp:
        # one untimed pass so TensorFlow's one-off start-up costs are not charged to the first arch
        export.export_tflite(export.build_for_export(warm, shape, args.classes), Path(tmp) / "warm.tflite")
        for i, arch in enumerate(archs):
            keras.backend.clear_session()
            t0 = time.perf_counter()
            model = build_student(arch, shape, args.classes)
            t1 = time.perf_counter()
            export.prepare_untrained(model, export.random_images(shape, export.BATCHNORM_CALIBRATION_SAMPLES, 2))
            t2 = time.perf_counter()
            flatbuffer = export.convert(model, "none")
            t3 = time.perf_counter()
            report = export.check_parity(model, flatbuffer,
                                         export.random_images(shape, export.DEFAULT_PARITY_SAMPLES, 1), "none")
            path = Path(tmp) / f"arch{i}.tflite"
            path.write_bytes(flatbuffer)
            t4 = time.perf_counter()
            result = run_local_benchmark(path, MEASURE)
            t5 = time.perf_counter()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[stage].append(seconds)
            baseline.append(from_keras_model_seconds(model))
            total = t5 - t0
            print(f"arch {i}: {total:.2f} s  (" + ", ".join(f"{s} {times[s][-1]:.2f}" for s in STAGES)
                  + f")  median {result.median_us:.0f} us  parity {report.max_abs_diff:.1g}  "
                  f"from_keras_model {baseline[-1]:.2f} s", flush=True)
    per_arch = [sum(times[s][i] for s in STAGES) for i in range(args.n)]
    fast = statistics.mean(times["convert"])
    slow = statistics.mean(baseline)
    print()
    print(f"{args.n} archs at {args.resolution}x{args.resolution}, {args.classes} classes; mean seconds per stage:")
    for stage in STAGES:
        print(f"  {stage:<8} {statistics.mean(times[stage]):.3f}")
    print(f"conversion: fast path {fast:.3f} s vs from_keras_model {slow:.3f} s per model: "
          f"{slow / fast:.1f}x faster")
    print(f"seconds per arch, arch -> measured .tflite: {statistics.mean(per_arch):.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
