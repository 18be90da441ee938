"""Per-device calibration of the lookup-table sum against whole-model measurements.

A calibration measures two sets of architectures on the device, both drawn from one seeded random pool:

* ``holdout`` random archs, never used for fitting, on which every method is judged;
* ``n_fit`` archs chosen from the rest of the pool by adaptive sampling (:mod:`latency_db.sampling`).

It fits every method of :mod:`latency_db.corrections` on the fit archs and stores each as a
calibration with its held-out accuracy. The one with the lowest held-out RMSPE is accepted (the
predictor uses the newest accepted calibration), provided it beats the raw table sum; the others are
kept as records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from akd_tf.benchmark import RunSettings, latency_us
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch, SearchSpace
from akd_tf.target import ModelTarget
from latency_db.accuracy import PredictionAccuracy, prediction_accuracy
from latency_db.corrections import LinearCorrection, Region, fit_learned, fit_linear, library_version
from latency_db.measure import WHOLE_MODEL_SETTINGS, measure_many
from latency_db.predictor import LutPredictor, predict_from_features
from latency_db.sampling import SamplingPlan, adaptive_sample
from latency_db.schema import Calibration
from latency_db.store import Store
from latency_db.tables import TableIdentity, choose_table

# The linear method has 3 coefficients; 10 fit points per coefficient keep one noisy measurement from
# moving it much, and the learned method needs tens of points for its trees' leaves (5 archs at least each).
MIN_FIT = 30
MIN_HOLDOUT = 10  # each held-out arch then weighs at most a tenth of the accuracy shares
DEFAULT_FIT, DEFAULT_HOLDOUT = 60, 20
POOL = 2000  # random candidates the adaptive sampling chooses from


@dataclass(frozen=True)
class MethodResult:
    method: str
    calibration_id: int
    accuracy: PredictionAccuracy  # on the held-out archs
    accepted: bool


@dataclass(frozen=True)
class CalibrationReport:
    n_fit: int
    uncalibrated: PredictionAccuracy  # the raw LUT sum on the held-out archs
    methods: tuple[MethodResult, ...]
    measuring_s: float  # wall time spent exporting and measuring (zero for archs measured before)
    table_id: int | None = None  # the table version it corrects

    @property
    def chosen(self) -> MethodResult | None:
        """The accepted method, or ``None`` when none beat the raw sum on the held-out archs."""
        return next((m for m in self.methods if m.accepted), None)


def chosen_method(raw: PredictionAccuracy, results: dict[str, PredictionAccuracy]) -> str | None:
    """The method with the lowest held-out RMSPE, if that is below the raw sum's; else ``None``."""
    best = min(results, key=lambda method: results[method].rmspe)
    return best if results[best].rmspe < raw.rmspe else None


def calibration_archs(space: SearchSpace, n_fit: int, holdout: int, seed: int) -> tuple[list[Arch], list[Arch]]:
    """(candidates for fitting, held-out archs), from one seeded random pool; no arch is in both."""
    for name, value, least in (("n_fit", n_fit, MIN_FIT), ("holdout", holdout, MIN_HOLDOUT)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInput(f"calibration needs {name} >= {least} archs, got {value!r} (fit: 10 per coefficient "
                               f"of the linear method; held out: each at most a tenth of the accuracy)")
    drawn = holdout + max(POOL, 2 * n_fit)
    pool = list(dict.fromkeys(space.sample_many(drawn, seed)))  # distinct, in the order drawn
    if len(pool) < holdout + n_fit:
        raise InvalidInput(f"space {space.name!r} gave only {len(pool)} distinct archs in {drawn} random samples; "
                           f"this calibration needs {n_fit} + {holdout} = {n_fit + holdout}")
    return pool[holdout:], pool[:holdout]


def check_measurable_now(store: Store, device_name: str, space: SearchSpace, target: ModelTarget,
                         table_id: int | None, settings: RunSettings) -> None:
    """InvalidInput unless the whole-model measurements taken now with ``settings`` belong to table version
    ``table_id`` (None: the current one): a calibration is fitted on measurements of its own version's runtime
    and threads only, so an older version (before an interpreter or ``benchmark_model`` upgrade) cannot be
    calibrated any more."""
    with store.session() as session:
        table = choose_table(session, device_name, space, target, table_id=table_id, threads=settings.num_threads)
        version = TableIdentity.of(table)
        now = TableIdentity.current(table.device, space, target.quantization, settings.num_threads)
        if (version.runtime, version.threads) != (now.runtime, now.threads):
            raise InvalidInput(
                f"latency table #{table.id} is {version.describe()}, but device {device_name!r} measures as "
                f"{now.describe()} now: a calibration is fitted on measurements of its own table version's "
                f"runtime and threads; calibrate the current version (leave out --table)")


def calibrate(store: Store, device_name: str, space: SearchSpace, target: ModelTarget, n_fit: int = DEFAULT_FIT, *,
              holdout: int = DEFAULT_HOLDOUT, seed: int = 0, settings: RunSettings = WHOLE_MODEL_SETTINGS,
              progress: Callable[[Arch], None] | None = None,
              wait_timeout_s: float | None = None, table_id: int | None = None) -> CalibrationReport:
    """Measure archs end to end (reusing stored measurements), fit every method for the device's current table
    version (or version ``table_id``), store them with that version, accept the best."""
    candidates, held_out = calibration_archs(space, n_fit, holdout, seed)
    check_measurable_now(store, device_name, space, target, table_id, settings)
    predictor = LutPredictor.load(store, device_name, space, target, table_id=table_id, threads=settings.num_threads)
    candidate_features = predictor.features_many(candidates)  # fails early on missing keys
    held_out_features = predictor.features_many(held_out)
    spent = [0.0]

    def measure(archs: list[Arch]) -> dict[Arch, float]:
        start = time.perf_counter()
        rows = measure_many(store, device_name, archs, target, settings=settings, progress=progress,
                            wait_timeout_s=wait_timeout_s)
        spent[0] += time.perf_counter() - start
        return {arch: latency_us(row) / 1000.0 for arch, row in rows.items()}

    fitted = adaptive_sample(candidates, candidate_features, SamplingPlan.for_total(n_fit), measure, seed)
    truth = measure(held_out)
    truth_ms = np.array([truth[a] for a in held_out])
    index = {arch: i for i, arch in enumerate(candidates)}
    fit_archs = list(fitted)
    fit_features = candidate_features[[index[a] for a in fit_archs]]
    fit_ms = np.array([fitted[a] for a in fit_archs])
    corrections = {"linear": fit_linear(fit_features, fit_ms), "lightgbm": fit_learned(fit_features, fit_ms, seed)}
    raw = prediction_accuracy(predict_from_features(None, held_out_features), truth_ms)
    results = {method: prediction_accuracy(c.predict_ms(held_out_features), truth_ms)
               for method, c in corrections.items()}
    winner = chosen_method(raw, results)
    region = Region.of(fit_features).to_dict()
    stored = []
    with store.session() as session:
        for method, correction in corrections.items():
            accuracy = results[method]
            if isinstance(correction, LinearCorrection):
                parameters = {"scale": correction.scale, "ms_per_weight_mb": correction.ms_per_weight_mb,
                              "offset_ms": correction.offset_ms}
            else:
                parameters = {"model": correction.model_text, "scale": None, "ms_per_weight_mb": None,
                              "offset_ms": None}
            row = Calibration(
                table_id=predictor.table_id, space=space.name, resolution=target.resolution,
                channels=target.channels, classes=target.classes, method=method, **parameters,
                library=library_version(method), region=region, n_fit=len(fit_archs), n_holdout=len(held_out),
                within_5_pct=accuracy.within_5_pct, within_10_pct=accuracy.within_10_pct, rmspe=accuracy.rmspe,
                kendall_tau=accuracy.kendall_tau, spearman_rho=accuracy.spearman_rho, raw_rmspe=raw.rmspe,
                accepted=method == winner, measuring_s=spent[0])
            session.add(row)
            session.flush()
            stored.append(MethodResult(method, row.id, accuracy, method == winner))
    return CalibrationReport(len(fit_archs), raw, tuple(stored), spent[0], predictor.table_id)
