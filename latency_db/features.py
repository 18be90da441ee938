"""What the latency predictor knows of an architecture: one vector of features, defined here only.

Each feature is a sum over the architecture's operators (:func:`akd_tf.walk.walk`), so a block's part
can be computed once and reused by every architecture that shares the block
(:class:`latency_db.predictor.LutPredictor` memoizes it). The table sum is the base of every
prediction; the others describe what a sum of per-operator micro-models cannot see: a whole model's
weights and activations competing for the caches that each micro-model had to itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from akd_tf.operators import Operator, folded_params
from akd_tf.target import ACTIVATION_BYTES, WEIGHT_BYTES


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    meaning: str


FEATURES = (
    Feature("lut_ms", "ms", "the latency table's entries of the operators, summed"),
    Feature("weight_mb", "MB", "weights as the .tflite stores them (BatchNorm folded) at the quantization's bytes"),
    Feature("macs_m", "M", "multiply-adds"),
    Feature("activation_mb", "MB", "bytes of the tensors the operators write"),
    Feature("operators", "", "operators: the stem, every layer, the head"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
LUT_MS, WEIGHT_MB = FEATURE_NAMES.index("lut_ms"), FEATURE_NAMES.index("weight_mb")


def operator_features(op: Operator, latency_us: float, quantization: str) -> np.ndarray:
    """The features of one operator whose table entry is ``latency_us``, in :data:`FEATURES` order."""
    return np.array([latency_us / 1000.0, folded_params(op) * WEIGHT_BYTES[quantization] / 1e6, op.macs / 1e6,
                     op.activation_elements * ACTIVATION_BYTES[quantization] / 1e6, 1.0])


def describe(features: np.ndarray) -> str:
    """``lut_ms=1.234 weight_mb=...``: a feature vector for messages."""
    return " ".join(f"{f.name}={value:.4g}" for f, value in zip(FEATURES, features))
