"""How a device's calibration turns an architecture's features into a latency.

A calibration (a :class:`latency_db.schema.Calibration` row) is fitted to whole-model measurements on
one device, space and target, and comes in two methods:

* ``linear``: ``scale * lut_ms + ms_per_weight_mb * weight_mb + offset_ms``, least squares on the
  relative error; three coefficients.
* ``lightgbm``: gradient-boosted trees (LightGBM) predicting ``log(measured / lut_ms)`` from the log of
  every :data:`~latency_db.features.FEATURES`; the latency is ``lut_ms * exp(prediction)``. Working on the
  ratio keeps the table sum as the base, so trees, which cannot extrapolate, only bend it. The model
  is stored as LightGBM's own text format, which loads without running code (unlike a pickle).

Each also knows the region it was fitted on (each feature's range, a :class:`Region`; the kernel models
of :mod:`latency_db.kernel_models` keep one too), so an answer outside it is flagged instead of given
silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from akd_tf.errors import InvalidInput
from latency_db.features import FEATURE_NAMES, LUT_MS, WEIGHT_MB

METHODS = ("linear", "lightgbm")
# A feature this far beyond the fitted range (relative to the range's end) is outside the region.
REGION_MARGIN = 0.10
# LightGBM's settings, chosen on this project's measurements (benchmarks/predictor_accuracy.py): small
# trees and many of them, as few samples as a calibration measures (tens) allow.
LIGHTGBM_PARAMS = {"objective": "regression", "learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 5,
                   "min_data_in_bin": 1, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                   "verbose": -1, "deterministic": True, "force_row_wise": True, "num_threads": 1}
LIGHTGBM_ROUNDS = 400


class Correction(Protocol):
    method: str

    def predict_ms(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Region:
    """The range of each feature a model was fitted on: a calibration's (:data:`FEATURE_NAMES`, the default), or
    any other model's features named by ``names``."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    names: tuple[str, ...] = FEATURE_NAMES

    @classmethod
    def of(cls, features: np.ndarray, names: tuple[str, ...] = FEATURE_NAMES) -> "Region":
        return cls(tuple(map(float, features.min(axis=0))), tuple(map(float, features.max(axis=0))), tuple(names))

    def outside(self, features: np.ndarray) -> list[str]:
        """For each row, ``""`` inside the region, else which features lie outside and the fitted range."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        slack = REGION_MARGIN * np.maximum(np.abs(low), np.abs(high))
        out = (features < low - slack) | (features > high + slack)
        return ["; ".join(f"{self.names[j]} {row[j]:.4g} outside fitted {low[j]:.4g}..{high[j]:.4g}"
                          for j in np.flatnonzero(flags))
                for row, flags in zip(features, out)]

    def to_dict(self) -> dict:
        return {"features": list(self.names), "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: dict, names: tuple[str, ...] = FEATURE_NAMES,
                  stored_as: str = "a calibration's region", refit: str = "calibrate the device again") -> "Region":
        """The region ``data`` (from :meth:`to_dict`) describes, which must name ``names``; else an
        ``InvalidInput`` saying what was ``stored_as`` and how to ``refit`` it."""
        if tuple(data.get("features", ())) != tuple(names):
            raise InvalidInput(f"{stored_as} names features {data.get('features')!r}; this version "
                               f"computes {list(names)}: {refit}")
        return cls(tuple(data["low"]), tuple(data["high"]), tuple(names))


@dataclass(frozen=True)
class LinearCorrection:
    scale: float
    ms_per_weight_mb: float
    offset_ms: float
    method: str = "linear"

    def predict_ms(self, features: np.ndarray) -> np.ndarray:
        return self.scale * features[:, LUT_MS] + self.ms_per_weight_mb * features[:, WEIGHT_MB] + self.offset_ms


def fit_linear(features: np.ndarray, measured_ms: Sequence[float]) -> LinearCorrection:
    """Least-squares ``(scale, ms_per_weight_mb, offset_ms)`` minimising the relative error to ``measured_ms``."""
    x, w, y = features[:, LUT_MS], features[:, WEIGHT_MB], np.asarray(measured_ms, float)
    if len(y) < 3:
        raise InvalidInput(f"a linear calibration needs at least 3 measured archs to fit, got {len(y)}")
    design = np.stack([x, w, np.ones_like(x)], axis=1) / y[:, None]  # residual / measured
    coefficients, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return LinearCorrection(*(float(c) for c in coefficients))


def log_features(features: np.ndarray) -> np.ndarray:
    """The log of feature rows, a zero read as 1e-9: what the learned correction and the sampler's distances
    work on."""
    return np.log(np.maximum(features, 1e-9))


class LearnedCorrection:
    """A LightGBM model of ``log(measured / lut_ms)``; built by :func:`fit_learned` or from its text."""

    method = "lightgbm"

    def __init__(self, model_text: str):
        import lightgbm

        self.model_text = model_text
        self._booster = lightgbm.Booster(model_str=model_text)
        if self._booster.num_feature() != len(FEATURE_NAMES):
            raise InvalidInput(f"a stored learned calibration reads {self._booster.num_feature()} features; this "
                               f"version computes {len(FEATURE_NAMES)}: calibrate the device again")

    def predict_ms(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        return features[:, LUT_MS] * np.exp(self._booster.predict(log_features(features), num_threads=1))


MIN_LEARNED_FIT = 2 * LIGHTGBM_PARAMS["min_data_in_leaf"]


def fit_learned(features: np.ndarray, measured_ms: Sequence[float], seed: int = 0) -> LearnedCorrection:
    """Fit a :class:`LearnedCorrection` to measured archs (deterministic for a given ``seed``)."""
    import lightgbm

    y = np.asarray(measured_ms, float)
    if len(y) < MIN_LEARNED_FIT:
        raise InvalidInput(f"a learned calibration needs at least {MIN_LEARNED_FIT} measured archs, got {len(y)}")
    data = lightgbm.Dataset(log_features(features), label=np.log(y / features[:, LUT_MS]),
                            feature_name=list(FEATURE_NAMES),
                            params={"min_data_in_bin": 1, "verbose": -1})
    booster = lightgbm.train({**LIGHTGBM_PARAMS, "seed": seed}, data, num_boost_round=LIGHTGBM_ROUNDS)
    return LearnedCorrection(booster.model_to_string())


def library_version(method: str) -> str:
    """The library (and version) a method's model is written by, stored with each calibration."""
    if method == "lightgbm":
        import lightgbm

        return f"lightgbm {lightgbm.__version__}"
    return f"numpy {np.__version__}"


def correction_of(row) -> Correction:
    """The correction a stored :class:`~latency_db.schema.Calibration` row describes."""
    if row.method == "linear":
        return LinearCorrection(row.scale, row.ms_per_weight_mb, row.offset_ms)
    if row.method == "lightgbm":
        return LearnedCorrection(row.model)
    raise InvalidInput(f"calibration #{row.id} has method {row.method!r}; this version knows {', '.join(METHODS)}")


def region_of(row) -> Region | None:
    """The feature region a stored calibration was fitted on (``None`` for calibrations stored before regions)."""
    return None if row.region is None else Region.from_dict(row.region)


def describe_correction(row) -> str:
    """One line naming a stored calibration and how it predicts, for answers and listings."""
    accuracy = f"{row.within_10_pct:.0%} within +-10% on {row.n_holdout} held-out archs"
    name = f"calibration #{row.id} of table #{row.table_id}"
    if row.method == "linear":
        return (f"{name}: LUT sum x {row.scale:.4f} + {row.ms_per_weight_mb:.4f} ms/MB weights + "
                f"{row.offset_ms:.4f} ms ({accuracy})")
    return f"{name}: {row.library or row.method} on {row.n_fit} measured archs ({accuracy})"
