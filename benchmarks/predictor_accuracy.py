"""Accuracy of the latency predictor on held-out random architectures, and what a device's calibration costs.

Needs the table built by benchmarks/lut_build.py (same --db, resolution and
classes). Runs the calibration a user runs (`akd-tf latency calibrate`: --n-fit
archs chosen by adaptive sampling, --holdout random archs to choose the
method), then measures --test random archs drawn with --test-seed, a seed the
calibration never draws from, and reports on them the raw table sum (the
baseline) and each fitted method. Every measurement is stored, so a rerun
measures only what it lacks.

    .venv/bin/python benchmarks/predictor_accuracy.py [--resolution 32 --classes 10 --n-fit 60 --holdout 20
                                                       --test 100 --test-seed 7001 --device local --db URL]
    .venv/bin/python benchmarks/predictor_accuracy.py --emulated-phone [--db sqlite:///benchmarks/.cache/phone.db]

With --emulated-phone everything goes through the device farm instead: an
emulated Pixel 4 (an ADB daemon on loopback whose benchmark_model really runs
each model, pinned to the last core) is registered as `emulated-pixel4`, a farm
worker in this process serves it, and the table, the calibration and the test
archs are all measured as farm jobs. A missing table is queued whole before the
worker starts, so the phone times its micro-models with no conversion running on
this host beside it (a real phone shares nothing with the host; the emulated one
shares its memory bandwidth, which the timing-context study found to distort
micro-model timings).

The headline (share of test archs within +-10% for the method the calibration
chose, goal >= 95%) is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from akd_tf.benchmark import latency_us
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.accuracy import prediction_accuracy
from latency_db.calibrate import calibrate, calibration_archs
from latency_db.corrections import correction_of
from latency_db.keys import enumerate_operators
from latency_db.measure import measure_many
from latency_db.predictor import LutPredictor, predict_from_features
from latency_db.schema import Calibration, LutEntry
from latency_db.store import open_store
from table_args import CACHE, add_table_arguments, ensure_cache

PHONE = "emulated-pixel4"


def _serve_phone(state_dir: str, core: int, ports, stop) -> None:
    from devicefarm.emulator import EmulatedPhone, Faults

    os.sched_setaffinity(0, {core})  # the phone's own core: conversions run on the others
    # Temperatures pinned at a cool 35 C, so no cool-down waits: this measures the predictor, not the heat model.
    with EmulatedPhone("pixel4", state_dir=state_dir, faults=Faults(temperature_c=35.0)).start() as phone:
        ports.put(phone.port)
        stop.wait()


@contextlib.contextmanager
def emulated_phone(store, workdir: Path):
    """Start an emulated Pixel 4 on the last core and register it as :data:`PHONE`; yields a function that
    starts serving it with a farm worker in a thread (the first call; later calls do nothing)."""
    from devicefarm.phones import register_phone
    from devicefarm.worker import FarmWorker, WorkerOptions

    cores = sorted(os.sched_getaffinity(0))
    context = multiprocessing.get_context("spawn")
    stop, ports = context.Event(), context.Queue()
    process = context.Process(target=_serve_phone, args=(str(workdir / "phone"), cores[-1], ports, stop), daemon=True)
    process.start()
    os.sched_setaffinity(0, set(cores[:-1]) or set(cores))
    binary = workdir / "benchmark_model"
    binary.write_bytes(b"the emulated phone runs its own benchmark_model\n")
    worker = None
    try:
        address = f"127.0.0.1:{ports.get(timeout=120)}"
        register_phone(store, address, name=PHONE, benchmark_binary=binary)
        worker = FarmWorker(store, [PHONE], worker_id="predictor-accuracy", options=WorkerOptions(poll_s=0.05))
        thread = threading.Thread(target=worker.run, daemon=True)

        def serve() -> None:
            if not thread.is_alive() and thread.ident is None:
                thread.start()

        yield serve
    finally:
        if worker is not None:
            worker.stop.set()
        stop.set()
        process.join(timeout=30)


def ensure_table(store, device: str, space, target: ModelTarget, serve) -> None:
    """Build the phone's table at ``target`` where keys are missing: every key converted and queued as a farm
    job first, then ``serve()`` starts the phone's worker and the jobs are waited for."""
    from latency_db.lut import build_lut, plan_build

    missing = plan_build(store, device, space, target).missing
    if missing:
        print(f"converting and queuing {len(missing)} table keys for {device}", flush=True)
        workers = max(1, len(os.sched_getaffinity(0)))
        queued = build_lut(store, device, space, target, workers=workers, wait=False)
        print(f"  queued in {queued.seconds / 60:.1f} min; the phone measures them now", flush=True)
        serve()
        summary = build_lut(store, device, space, target, workers=workers)
        print(f"  table measured in {summary.seconds / 60:.1f} min", flush=True)
    serve()


def table_build_minutes(store, device_name: str, space, target: ModelTarget, table_id: int) -> float:
    """Minutes between the first and last entry of table version ``table_id`` at ``target`` (its build time)."""
    keys = [op.key for op in enumerate_operators(space, target.input_shape, target.classes)]
    with store.session() as session:
        stamps = session.scalars(select(LutEntry.measured_at).where(LutEntry.table_id == table_id,
                                                                    LutEntry.key.in_(keys))).all()
    return 0.0 if not stamps else (max(stamps) - min(stamps)).total_seconds() / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=60)
    parser.add_argument("--holdout", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="the calibration's seed")
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--test-seed", type=int, default=7001)
    parser.add_argument("--device", default="local")
    parser.add_argument("--emulated-phone", action="store_true", help="measure through the farm on an emulated phone")
    add_table_arguments(parser)
    args = parser.parse_args()
    if args.emulated_phone:
        ensure_cache()
        if args.db == parser.get_default("db"):
            args.db = f"sqlite:///{CACHE / 'phone.db'}"
        os.environ.setdefault("AKD_TF_ADB_KEY", str(Path(tempfile.gettempdir()) / "akd-tf-bench-keys" / "adbkey"))
        with tempfile.TemporaryDirectory(prefix="akd-tf-phone-") as tmp:
            store = open_store(args.db)
            with emulated_phone(store, Path(tmp)) as serve:
                args.device = PHONE
                ensure_table(store, PHONE, get_space(), ModelTarget(args.resolution, args.classes), serve)
                report_accuracy(args, store)
        return
    report_accuracy(args, open_store(args.db))


def report_accuracy(args, store) -> None:
    space = get_space()
    target = ModelTarget(args.resolution, args.classes)
    done = [0]

    def progress(_arch):
        done[0] += 1
        if done[0] % 10 == 0:
            print(f"  measured {done[0]} archs", flush=True)

    start = time.perf_counter()
    report = calibrate(store, args.device, space, target, args.n_fit, holdout=args.holdout, seed=args.seed,
                       progress=progress)
    calibration_minutes = (time.perf_counter() - start) / 60
    print(f"calibration: {report.n_fit} adaptive + {report.uncalibrated.n} random archs, "
          f"{report.measuring_s / 60:.1f} min exporting and measuring ({calibration_minutes:.1f} min in all)")
    for result in report.methods:
        print(f"  #{result.calibration_id} {result.method:<8} on its own held-out: {result.accuracy.summary()}"
              f"{' [chosen]' if result.accepted else ''}")

    candidates, held_out = calibration_archs(space, args.n_fit, args.holdout, args.seed)
    seen = set(candidates) | set(held_out)
    test = [a for a in dict.fromkeys(space.sample_many(args.test * 2, args.test_seed)) if a not in seen][:args.test]
    rows = measure_many(store, args.device, test, target, progress=progress)
    measured = np.array([latency_us(rows[a]) / 1000 for a in test])
    predictor = LutPredictor.load(store, args.device, space, target)
    features = predictor.features_many(test)
    print(f"on {len(test)} test archs (seed {args.test_seed}, none drawn by the calibration), "
          f"{args.resolution}x{args.resolution}, {args.classes} classes:")
    print(f"  raw LUT sum  {prediction_accuracy(predict_from_features(None, features), measured).summary()}")
    chosen = None
    with store.session() as session:
        for result in report.methods:
            row = session.get(Calibration, result.calibration_id)
            accuracy = prediction_accuracy(correction_of(row).predict_ms(features), measured)
            print(f"  {row.method:<12} {accuracy.summary()}{' [chosen]' if result.accepted else ''}")
            if result.accepted:
                chosen = (row.method, accuracy)
    outside = sum(bool(flag) for flag in predictor.outside_region(features))
    print(f"  {outside} of {len(test)} test archs lie outside the chosen calibration's fitted region")
    table_minutes = table_build_minutes(store, args.device, space, target, predictor.table_id)
    print(f"cost of a new device: table {table_minutes:.1f} min + calibration {report.measuring_s / 60:.1f} min")
    if chosen is None:
        print("no calibration was chosen: predictions stay the raw table sum")
    else:
        method, accuracy = chosen
        print(f"test archs within +-10% ({method}): {accuracy.within_10_pct:.1%} (goal >= 95%)")


if __name__ == "__main__":
    main()
