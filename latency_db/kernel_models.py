"""Kernel-level latency models: an operator's table entry predicted from its configuration.

Fitted on one table version's measured entries, a kernel model prices operators the table never measured
(another input resolution or class count), after nn-Meter's per-kernel predictors. It is built to
extrapolate, since the operators it prices are mostly larger or smaller than any it was fitted on:

1. a **cost model** per operator kind (:data:`~latency_db.kernel_features.OPERATOR_KINDS`): a fixed
   cost plus a non-negative cost per unit of each work feature
   (:data:`~latency_db.kernel_features.WORK_FEATURES`: TFLite operators run, multiply-adds of each kind
   of kernel, weight, input and output bytes), least squares on the relative error. It grows with the
   work, so an operator at a resolution never measured costs what its multiply-adds and bytes cost;
2. a **LightGBM correction** of its ratio, ``log(entry / cost)``, on the log of every kernel feature:
   trees bend the cost model where it is wrong inside the fitted region (a kernel slower per MAC at
   some channel counts) and, since a tree's prediction is constant beyond the last split, hand the
   nearest fitted correction on outside it instead of extrapolating a curve.

The method was chosen on measured accuracy (``benchmarks/kernel_pricing.py``: fitted on some
resolutions, pricing another's entries). The model is stored as data: the coefficients and LightGBM's
text format, which loads without running code. :class:`KindRegions` keeps each kind's fitted feature
ranges, so an operator outside them is flagged.
"""

from __future__ import annotations

import numpy as np

from akd_tf.errors import InvalidInput
from latency_db.corrections import Region
from latency_db.kernel_features import (KERNEL_FEATURE_NAMES, OPERATOR_KINDS, WORK_FEATURES)

METHOD = "cost+lightgbm"
KIND = KERNEL_FEATURE_NAMES.index("kind")
WORK = [KERNEL_FEATURE_NAMES.index(name) for name in WORK_FEATURES]
COST_TERMS = ("fixed_us", *(f"us_per_{name}" for name in WORK_FEATURES))
# The features an operator's region is judged on: its shapes and its work (kind and settings are discrete).
REGION_FEATURES = ("input_h", "input_w", "in_channels", "out_channels", "classes", *WORK_FEATURES)
_REGION = [KERNEL_FEATURE_NAMES.index(name) for name in REGION_FEATURES]
# LightGBM's settings for the ratio: small learning rate and leaves of at least 20 entries, so a correction
# rests on many operators; chosen on benchmarks/kernel_pricing.py.
LIGHTGBM_PARAMS = {"objective": "regression", "learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 20,
                   "min_data_in_bin": 1, "lambda_l2": 1.0, "verbose": -1, "deterministic": True,
                   "force_row_wise": True, "num_threads": 1}
LIGHTGBM_ROUNDS = 300
MIN_ENTRIES = 2  # fewer entries cannot tell a fixed cost from a cost per unit


def log_kernel_features(features: np.ndarray) -> np.ndarray:
    """``log(1 + x)`` of every feature but the kind (a category): what the LightGBM correction reads."""
    logged = np.log1p(np.maximum(features, 0.0))
    logged[:, KIND] = features[:, KIND]
    return logged


def _design(features: np.ndarray) -> np.ndarray:
    """The cost model's columns: 1 (the fixed cost) and each work feature."""
    return np.column_stack([np.ones(len(features)), features[:, WORK]])


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    return nnls(a, b, maxiter=50 * a.shape[1])[0]


def _cost_us(costs: dict[str, list[float]], features: np.ndarray) -> np.ndarray:
    """Each row's fixed cost plus its work features times ``costs[kind]``. A kind without costs is an
    ``InvalidInput`` naming the kinds there are (never a price of zero)."""
    out = np.empty(len(features))
    kinds = features[:, KIND].astype(int)
    for code in np.unique(kinds):
        kind = OPERATOR_KINDS[code]
        if kind not in costs:
            raise InvalidInput(f"the kernel model was fitted on no {kind} operator (it knows "
                               f"{', '.join(sorted(costs))}); fit it on a table with {kind} entries")
        rows = kinds == code
        out[rows] = _design(features[rows]) @ np.asarray(costs[kind])
    return out


class KernelCostModel:
    """A fitted kernel model (see the module's docstring); built by :func:`fit_kernel_model` or from the dict
    :meth:`to_dict` wrote."""

    method = METHOD

    def __init__(self, costs: dict[str, list[float]], lightgbm_text: str):
        import lightgbm

        unknown = sorted(set(costs) - set(OPERATOR_KINDS))
        if unknown or any(len(c) != len(COST_TERMS) for c in costs.values()):
            raise InvalidInput(f"a stored kernel model prices kinds {sorted(costs)} with "
                               f"{sorted({len(c) for c in costs.values()})} terms; this version knows kinds "
                               f"{list(OPERATOR_KINDS)} with {len(COST_TERMS)} terms: fit the kernel model again")
        self.costs = {kind: [float(c) for c in coefficients] for kind, coefficients in costs.items()}
        self.lightgbm_text = lightgbm_text
        self._booster = lightgbm.Booster(model_str=lightgbm_text)
        if self._booster.num_feature() != len(KERNEL_FEATURE_NAMES):
            raise InvalidInput(f"a stored kernel model reads {self._booster.num_feature()} features; this version "
                               f"computes {len(KERNEL_FEATURE_NAMES)}: fit the kernel model again")

    def cost_us(self, features: np.ndarray) -> np.ndarray:
        """The cost model's latency (microseconds) of each row of kernel features."""
        return _cost_us(self.costs, features)

    def predict_us(self, features: np.ndarray) -> np.ndarray:
        """The predicted table entry (microseconds) of each row of kernel features."""
        if len(features) == 0:
            return np.zeros(0)
        return self.cost_us(features) * np.exp(self._booster.predict(log_kernel_features(features), num_threads=1))

    def to_dict(self) -> dict:
        return {"method": self.method, "features": list(KERNEL_FEATURE_NAMES), "cost_terms": list(COST_TERMS),
                "costs": self.costs, "lightgbm": self.lightgbm_text}

    @classmethod
    def from_dict(cls, data: dict) -> "KernelCostModel":
        if data.get("method") != METHOD:
            raise InvalidInput(f"a stored kernel model has method {data.get('method')!r}; this version knows "
                               f"{METHOD}: fit the kernel model again")
        if tuple(data.get("features", ())) != KERNEL_FEATURE_NAMES:
            raise InvalidInput(f"a stored kernel model names features {data.get('features')!r}; this version "
                               f"computes {list(KERNEL_FEATURE_NAMES)}: fit the kernel model again")
        return cls(data["costs"], data["lightgbm"])


def fit_kernel_model(features: np.ndarray, latency_us, seed: int = 0) -> KernelCostModel:
    """Fit a :class:`KernelCostModel` to operators' kernel features and measured entries (microseconds);
    deterministic for a given ``seed``."""
    import lightgbm

    y = np.asarray(latency_us, float)
    if len(y) < MIN_ENTRIES:
        raise InvalidInput(f"a kernel model needs at least {MIN_ENTRIES} measured entries, got {len(y)}")
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise InvalidInput("a kernel model is fitted on positive, finite latencies; got "
                           f"{y[(~np.isfinite(y)) | (y <= 0)][:3].tolist()}")
    costs = {}
    kinds = features[:, KIND].astype(int)
    for code in np.unique(kinds):
        rows = kinds == code
        costs[OPERATOR_KINDS[code]] = [float(c) for c in _nnls(_design(features[rows]) / y[rows, None],
                                                               np.ones(int(rows.sum())))]
    ratio = np.log(y / np.maximum(_cost_us(costs, features), 1e-9))
    data = lightgbm.Dataset(log_kernel_features(features), label=ratio, feature_name=list(KERNEL_FEATURE_NAMES),
                            categorical_feature=[KIND], params={"min_data_in_bin": 1, "verbose": -1})
    booster = lightgbm.train({**LIGHTGBM_PARAMS, "seed": seed}, data, num_boost_round=LIGHTGBM_ROUNDS)
    return KernelCostModel(costs, booster.model_to_string())


class KindRegions:
    """The fitted range of :data:`REGION_FEATURES` for each operator kind a kernel model was fitted on."""

    def __init__(self, regions: dict[str, Region]):
        self.regions = regions

    @classmethod
    def of(cls, features: np.ndarray) -> "KindRegions":
        kinds = features[:, KIND].astype(int)
        return cls({OPERATOR_KINDS[code]: Region.of(features[kinds == code][:, _REGION], REGION_FEATURES)
                    for code in np.unique(kinds)})

    def outside(self, features: np.ndarray) -> list[str]:
        """For each row of kernel features, ``""`` inside its kind's region, else ``kind: which features lie
        outside and the fitted ranges``."""
        flags = [""] * len(features)
        kinds = features[:, KIND].astype(int)
        for code in np.unique(kinds):
            kind = OPERATOR_KINDS[code]
            rows = np.flatnonzero(kinds == code)
            region = self.regions.get(kind)
            found = (["not fitted on this kind"] * len(rows) if region is None
                     else region.outside(features[rows][:, _REGION]))
            for row, flag in zip(rows, found):
                flags[row] = f"{kind}: {flag}" if flag else ""
        return flags

    def to_dict(self) -> dict:
        return {kind: region.to_dict() for kind, region in self.regions.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "KindRegions":
        return cls({kind: Region.from_dict(region, REGION_FEATURES, stored_as="a kernel model's region",
                                           refit="fit the kernel model again")
                    for kind, region in data.items()})


def library_version() -> str:
    """What writes a kernel model, stored with it."""
    import lightgbm

    return f"lightgbm {lightgbm.__version__}"
