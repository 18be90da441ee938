"""Per-device calibration of the lookup-table sum against whole-model measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from akd_tf.benchmark import RunSettings
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch, SearchSpace
from latency_db.devices import get_device
from akd_tf.target import ModelTarget
from latency_db.measure import WHOLE_MODEL_SETTINGS, measure_many
from latency_db.predictor import (LutPredictor, PredictionAccuracy, apply_calibration, fit_calibration,
                                  prediction_accuracy)
from latency_db.schema import Calibration
from latency_db.store import Store


@dataclass(frozen=True)
class CalibrationReport:
    calibration_id: int
    scale: float
    ms_per_weight_mb: float
    offset_ms: float
    n_fit: int
    uncalibrated: PredictionAccuracy  # raw LUT sum on the held-out archs
    calibrated: PredictionAccuracy


def calibration_archs(space: SearchSpace, n: int, seed: int) -> tuple[list[Arch], list[Arch]]:
    """``n`` seeded random archs split alternately into (fit, held-out)."""
    if n < 6:
        raise InvalidInput(f"calibration needs n >= 6 archs (half fit the 3 coefficients, half held out), got {n}")
    archs = space.sample_many(n, seed)
    return archs[0::2], archs[1::2]


def calibrate(store: Store, device_name: str, space: SearchSpace, target: ModelTarget, n: int, *, seed: int = 0,
              settings: RunSettings = WHOLE_MODEL_SETTINGS,
              progress: Callable[[Arch], None] | None = None,
              wait_timeout_s: float | None = None) -> CalibrationReport:
    """Measure ``n`` random archs end to end (reusing stored measurements), fit the correction, store it.

    The fit uses half the archs; the accuracy reported is on the other half.
    """
    predictor = LutPredictor.load(store, device_name, space, target)
    fit, held_out = calibration_archs(space, n, seed)
    features = {a: predictor.features(a) for a in fit + held_out}  # fails early on missing keys
    rows = measure_many(store, device_name, fit + held_out, target, settings=settings, progress=progress,
                        wait_timeout_s=wait_timeout_s)
    measured = {arch: row.median_us / 1000.0 for arch, row in rows.items()}
    coefficients = fit_calibration([features[a][0] for a in fit], [features[a][1] for a in fit],
                                   [measured[a] for a in fit])
    scale, per_mb, offset = coefficients
    truth = [measured[a] for a in held_out]
    raw = prediction_accuracy([features[a][0] for a in held_out], truth)
    corrected = prediction_accuracy([apply_calibration(coefficients, *features[a]) for a in held_out], truth)
    with store.session() as session:
        device = get_device(session, device_name)
        row = Calibration(device_id=device.id, space=space.name, resolution=target.resolution,
                          channels=target.channels, classes=target.classes, quantization=target.quantization,
                          scale=scale, ms_per_weight_mb=per_mb, offset_ms=offset, n_fit=len(fit), n_holdout=len(held_out),
                          within_5_pct=corrected.within_5_pct, within_10_pct=corrected.within_10_pct,
                          rmspe=corrected.rmspe, kendall_tau=corrected.kendall_tau)
        session.add(row)
        session.flush()
        calibration_id = row.id
    return CalibrationReport(calibration_id, scale, per_mb, offset, len(fit), raw, corrected)
