"""How accurately a table's kernel model prices a shape the table never measured.

Builds the device's table (same --db as the other latency benchmarks) at the
--fit resolutions and at --test, with --classes and --test-classes heads,
where keys are missing. Then, from the one table version:

* resolution: fits the kernel model (latency_db.kernel_models) on the entries
  of the --fit resolutions' networks only (what a table built there holds)
  and prices the entries of the --test networks it lacks; per entry against
  the measured ones (within +-10%, RMSPE), beside the alternatives it was
  chosen over, fitted on the same entries (LightGBM alone, LightGBM with
  linear leaves, the cost model alone).
  For --archs random archs (--arch-seed; no arch takes part in any fit) at
  --test: the priced sum (what `latency query --price-missing` answers) against
  the measured table sum there, and against whole-model measurements there
  (the whole-model protocol of predictor_accuracy.py; the measured table sum's
  own accuracy is the baseline);
* class count: fits on every entry but the --test-classes heads and prices
  those (10 vs 1000 classes changes only the head); per head entry, and the
  same archs at --test with --test-classes against the measured table sum and
  whole-model measurements.

Every measurement is stored, so a rerun measures only what it lacks.

    .venv/bin/python benchmarks/kernel_pricing.py [--fit 32,64 --test 96 --classes 10 --test-classes 1000
                                                   --archs 100 --arch-seed 7101 --device local --db URL]

The headline (priced archs at the test resolution within +-10% of their
whole-model measurements, beside the measured table sum's share) is printed last.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from akd_tf.benchmark import latency_us
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.accuracy import PredictionAccuracy, prediction_accuracy
from latency_db.features import LUT_MS
from latency_db.kernel_features import KERNEL_FEATURE_NAMES, kernel_features_many
from latency_db.kernel_models import KIND, KindRegions, fit_kernel_model, log_kernel_features
from latency_db.kernel_pricing import KernelPricing, measured_operators
from latency_db.lut import build_lut, plan_build
from latency_db.measure import measure_many
from latency_db.predictor import LutPredictor
from latency_db.store import open_store
from latency_db.tables import choose_table
from table_args import CACHE, ensure_cache


def ensure_tables(store, device: str, space, shapes) -> None:
    """Build the device's table at each (resolution, classes) where keys are missing (a shared key once)."""
    for resolution, classes in shapes:
        target = ModelTarget(resolution, classes)
        missing = plan_build(store, device, space, target).missing
        if missing:
            print(f"building {len(missing)} table keys at {resolution}x{resolution}, {classes} classes", flush=True)
            summary = build_lut(store, device, space, target, workers=max(1, len(os.sched_getaffinity(0)) - 1))
            print(f"  built in {summary.seconds / 60:.1f} min", flush=True)


def per_entry(predicted_us, measured_us) -> str:
    accuracy = prediction_accuracy(predicted_us, measured_us)
    return (f"{accuracy.within_10_pct:6.1%} within +-10%, {accuracy.within_5_pct:6.1%} within +-5%, "
            f"RMSPE {accuracy.rmspe:6.2f}%, median error {100 * np.median(predicted_us / measured_us - 1):+.2f}%")


def lightgbm_alone(linear_leaves: bool):
    """The alternatives: LightGBM on the log features predicting the log entry (nn-Meter's trees, without the
    cost model), with constant or linear leaves."""
    def fit(features, latency_us):
        import lightgbm

        params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 10,
                  "verbose": -1, "deterministic": True, "force_row_wise": True, "num_threads": 1, "seed": 0,
                  "linear_tree": linear_leaves, **({"linear_lambda": 1.0} if linear_leaves else {})}
        data = lightgbm.Dataset(log_kernel_features(features), label=np.log(latency_us), categorical_feature=[KIND],
                                feature_name=list(KERNEL_FEATURE_NAMES), params={"verbose": -1})
        booster = lightgbm.train(params, data, num_boost_round=600)
        return lambda rows: np.exp(booster.predict(log_kernel_features(rows)))
    return fit


ALTERNATIVES = {
    "LightGBM alone": lightgbm_alone(False),
    "LightGBM, linear leaves": lightgbm_alone(True),
    "cost model alone": lambda f, y: fit_kernel_model(f, y).cost_us,
}


def arch_accuracy(label: str, predicted_ms, reference_ms) -> PredictionAccuracy:
    accuracy = prediction_accuracy(predicted_ms, reference_ms)
    print(f"  {label:<44} {accuracy.summary().replace('held-out archs', 'archs')}", flush=True)
    return accuracy


def priced_archs(args, store, space, measured, fit_rows, model, target, archs, device) -> dict:
    """The archs at ``target`` priced from the entries of ``fit_rows`` and ``model`` (the predictor the query
    uses), against the measured table sum there and whole-model measurements there."""
    known = {op.key: float(y) for op, y, fit in zip(measured.operators, measured.latency_us, fit_rows) if fit}
    every = {op.key: float(y) for op, y in zip(measured.operators, measured.latency_us)}
    fitted = kernel_features_many([op for op, fit in zip(measured.operators, fit_rows) if fit], "none")
    pricing = KernelPricing(model, KindRegions.of(fitted), "the benchmark's kernel model", "")
    priced = LutPredictor(device, space, target, known, kernel=pricing)
    pricings = [priced.pricing(a) for a in archs]
    priced_ms = np.array([p.features[LUT_MS] for p in pricings])
    table_ms = LutPredictor(device, space, target, every).features_many(archs)[:, LUT_MS]
    done = [0]

    def progress(_arch):
        done[0] += 1
        if done[0] % 20 == 0:
            print(f"  measured {done[0]} archs", flush=True)

    rows = measure_many(store, device, archs, target, progress=progress)
    whole_ms = np.array([latency_us(rows[a]) / 1000 for a in archs])
    share = np.mean([len(p.kernel_priced) / p.operators for p in pricings])
    outside = sum(bool(p.kernel_outside) for p in pricings)
    ratio = whole_ms / table_ms
    print(f"{len(archs)} archs (seed {args.arch_seed}) at {target.resolution}x{target.resolution}, {target.classes} "
          f"classes: {share:.0%} of their operators priced on average; {outside} with a priced operator outside the "
          f"fitted region; whole model / measured table sum: median {np.median(ratio):.3f} "
          f"(10th-90th percentile {np.percentile(ratio, 10):.3f}-{np.percentile(ratio, 90):.3f})")
    return {"table": arch_accuracy("priced sum vs measured table sum", priced_ms, table_ms),
            "whole": arch_accuracy("priced sum vs whole-model measurements", priced_ms, whole_ms),
            "baseline": arch_accuracy("measured table sum vs whole-model (baseline)", table_ms, whole_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", default="32,64", help="resolutions whose entries the model is fitted on")
    parser.add_argument("--test", type=int, default=96, help="the resolution priced")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--test-classes", type=int, default=1000, help="the class count priced")
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--arch-seed", type=int, default=7101)
    parser.add_argument("--device", default="local")
    parser.add_argument("--db", default=f"sqlite:///{CACHE / 'host.db'}",
                        help="database holding the tables (default benchmarks/.cache/host.db)")
    args = parser.parse_args()
    fit_resolutions = sorted(int(r) for r in args.fit.split(","))
    if args.test in fit_resolutions:
        parser.error(f"--test {args.test} is one of --fit {args.fit}: price a resolution the fit never saw")
    ensure_cache()
    store, space = open_store(args.db), get_space()
    resolutions = [*fit_resolutions, args.test]
    ensure_tables(store, args.device, space, [(r, c) for r in resolutions for c in (args.classes, args.test_classes)])
    with store.session() as session:
        table = choose_table(session, args.device, space, ModelTarget(args.test, args.classes))
        measured = measured_operators(session, table, space)
        table_id = table.id
    print(f"table #{table_id}: {len(measured.operators)} entries ({measured.shapes.shape()})")
    features = kernel_features_many(measured.operators, "none")
    heads = np.array([op.key.startswith("head-") for op in measured.operators])
    classes = np.array([getattr(op, "num_classes", 0) for op in measured.operators])
    archs = list(dict.fromkeys(space.sample_many(args.archs * 2, args.arch_seed)))[:args.archs]

    # resolution: fitted on the entries a table built at --fit holds (heads of --classes), pricing the entries of the
    # --test networks it lacks (a key the --test networks share with a --fit network is read from the table)
    other_heads = heads & (classes != args.classes)
    fit_rows = np.array([bool(r & set(fit_resolutions)) for r in measured.resolutions]) & ~other_heads
    held = np.array([args.test in r for r in measured.resolutions]) & ~fit_rows & ~other_heads
    y = measured.latency_us
    start = time.perf_counter()
    model = fit_kernel_model(features[fit_rows], y[fit_rows])
    fit_s = time.perf_counter() - start
    print(f"resolution: fitted on the {fit_rows.sum()} entries of the {args.fit} networks in {fit_s:.1f} s; pricing "
          f"the {held.sum()} entries of the {args.test}x{args.test} networks they lack, per entry:")
    print(f"  {model.method + ' (chosen)':<28} {per_entry(model.predict_us(features[held]), y[held])}")
    for name, fit in ALTERNATIVES.items():
        print(f"  {name:<28} {per_entry(fit(features[fit_rows], y[fit_rows])(features[held]), y[held])}", flush=True)
    resolution = priced_archs(args, store, space, measured, fit_rows, model, ModelTarget(args.test, args.classes),
                              archs, args.device)

    # class count: fitted on every entry but the --test-classes heads, pricing those
    class_held = heads & (classes == args.test_classes)
    class_fit = ~class_held & ~(heads & (classes != args.classes))
    class_model = fit_kernel_model(features[class_fit], y[class_fit])
    print(f"class count: fitted on {class_fit.sum()} entries (heads of {args.classes} classes), pricing the "
          f"{class_held.sum()} heads of {args.test_classes} classes, per entry:")
    print(f"  {class_model.method:<28} {per_entry(class_model.predict_us(features[class_held]), y[class_held])}")
    by_key = dict(zip((op.key for op in measured.operators), y))
    extra = [by_key[op.key] - by_key[op.key.replace(f"-classes:{args.test_classes}", f"-classes:{args.classes}")]
             for op, held_head in zip(measured.operators, class_held) if held_head]
    print(f"  measured: a head of {args.test_classes} classes takes {np.median(extra):.1f} us more than the same head "
          f"of {args.classes} (median of {len(extra)}; {min(extra):.1f}-{max(extra):.1f})")
    priced_archs(args, store, space, measured, class_fit, class_model, ModelTarget(args.test, args.test_classes),
                 archs, args.device)

    whole, baseline, table_sum = resolution["whole"], resolution["baseline"], resolution["table"]
    print(f"archs at {args.test}x{args.test} priced from the {args.fit} tables: {whole.within_10_pct:.1%} within "
          f"+-10% of whole-model measurements (RMSPE {whole.rmspe:.2f}%; the measured {args.test}x{args.test} table "
          f"sum {baseline.within_10_pct:.1%}, RMSPE {baseline.rmspe:.2f}%), {table_sum.within_10_pct:.1%} of the "
          f"measured table sum")


if __name__ == "__main__":
    main()
