"""Calibration of one table version's sum against whole-model measurements on its device."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from akd_tf.benchmark import RunSettings, latency_us
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch, SearchSpace
from akd_tf.target import ModelTarget
from latency_db.measure import WHOLE_MODEL_SETTINGS, measure_many
from latency_db.predictor import (LutPredictor, PredictionAccuracy, apply_calibration, fit_calibration,
                                  prediction_accuracy)
from latency_db.schema import Calibration
from latency_db.store import Store


COEFFICIENTS = 3  # scale, ms per MB of weights, offset
# Fit points per coefficient: with 5, a least-squares fit of 3 coefficients keeps 12 residual degrees of
# freedom, so one noisy measurement moves it little; the held-out half is as large, so each of its archs
# weighs 1/15 of the accuracy shares.
MIN_FIT_PER_COEFFICIENT = 5
MIN_ARCHS = 2 * COEFFICIENTS * MIN_FIT_PER_COEFFICIENT


@dataclass(frozen=True)
class CalibrationReport:
    calibration_id: int
    scale: float
    ms_per_weight_mb: float
    offset_ms: float
    n_fit: int
    uncalibrated: PredictionAccuracy  # raw LUT sum on the held-out archs
    calibrated: PredictionAccuracy
    table_id: int | None = None  # the table version it corrects

    @property
    def accepted(self) -> bool:
        """True when the correction beat the raw sum (lower RMSPE) on the held-out archs: only then is it used."""
        return self.calibrated.rmspe < self.uncalibrated.rmspe


def calibration_archs(space: SearchSpace, n: int, seed: int) -> tuple[list[Arch], list[Arch]]:
    """``n`` seeded random archs split alternately into (fit, held-out)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_ARCHS:
        raise InvalidInput(f"calibration needs n >= {MIN_ARCHS} archs (half fit the {COEFFICIENTS} coefficients, "
                           f"{MIN_FIT_PER_COEFFICIENT} per coefficient; half held out), got {n!r}")
    archs = space.sample_many(n, seed)
    return archs[0::2], archs[1::2]


def calibrate(store: Store, device_name: str, space: SearchSpace, target: ModelTarget, n: int, *, seed: int = 0,
              settings: RunSettings = WHOLE_MODEL_SETTINGS,
              progress: Callable[[Arch], None] | None = None,
              wait_timeout_s: float | None = None, table_id: int | None = None) -> CalibrationReport:
    """Measure ``n`` random archs end to end (reusing stored measurements), fit the correction of the device's
    current table version (or version ``table_id``), store it with that version.

    The fit uses half the archs; the accuracy reported is on the other half. A correction that predicts
    that half worse than the raw table sum is stored as not accepted, and the predictor keeps the raw sum
    (or the newest accepted calibration of that version).
    """
    fit, held_out = calibration_archs(space, n, seed)
    predictor = LutPredictor.load(store, device_name, space, target, table_id=table_id)
    features = {a: predictor.features(a) for a in fit + held_out}  # fails early on missing keys
    rows = measure_many(store, device_name, fit + held_out, target, settings=settings, progress=progress,
                        wait_timeout_s=wait_timeout_s)
    measured = {arch: latency_us(row) / 1000.0 for arch, row in rows.items()}
    coefficients = fit_calibration([features[a][0] for a in fit], [features[a][1] for a in fit],
                                   [measured[a] for a in fit])
    scale, per_mb, offset = coefficients
    truth = [measured[a] for a in held_out]
    raw = prediction_accuracy([features[a][0] for a in held_out], truth)
    corrected = prediction_accuracy([apply_calibration(coefficients, *features[a]) for a in held_out], truth)
    report = CalibrationReport(0, scale, per_mb, offset, len(fit), raw, corrected, predictor.table_id)
    with store.session() as session:
        row = Calibration(table_id=predictor.table_id, space=space.name, resolution=target.resolution,
                          channels=target.channels, classes=target.classes, scale=scale, ms_per_weight_mb=per_mb,
                          offset_ms=offset, n_fit=len(fit), n_holdout=len(held_out),
                          within_5_pct=corrected.within_5_pct, within_10_pct=corrected.within_10_pct,
                          rmspe=corrected.rmspe, kendall_tau=corrected.kendall_tau, raw_rmspe=raw.rmspe,
                          accepted=report.accepted)
        session.add(row)
        session.flush()
        return replace(report, calibration_id=row.id)
