"""How close predicted latencies are to measured ones: the shares within +-5% and +-10%, RMSPE and ranks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from akd_tf.errors import InvalidInput


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b rank correlation of two equal-length sequences."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b) or len(a) < 2:
        raise InvalidInput(f"kendall_tau needs two sequences of equal length >= 2, got {len(a)} and {len(b)}")
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    concordant_minus_discordant = float(np.sum(da * db))
    ties_a, ties_b = float(np.sum(da == 0)), float(np.sum(db == 0))
    pairs = float(len(i))
    denominator = np.sqrt((pairs - ties_a) * (pairs - ties_b))
    return concordant_minus_discordant / denominator if denominator > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on the ranks, ties at their mean rank)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b) or len(a) < 2:
        raise InvalidInput(f"spearman_rho needs two sequences of equal length >= 2, got {len(a)} and {len(b)}")
    ra, rb = _ranks(a) - (len(a) + 1) / 2, _ranks(b) - (len(b) + 1) / 2
    denominator = np.sqrt(np.sum(ra ** 2) * np.sum(rb ** 2))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class PredictionAccuracy:
    n: int
    within_5_pct: float  # fraction of predictions within +-5% of the measurement
    within_10_pct: float
    rmspe: float  # root mean squared percentage error, in percent
    kendall_tau: float
    spearman_rho: float

    def summary(self) -> str:
        return (f"on {self.n} held-out archs: {self.within_5_pct:.1%} within +-5%, {self.within_10_pct:.1%} within "
                f"+-10%, RMSPE {self.rmspe:.2f}%, Kendall tau {self.kendall_tau:.3f}, "
                f"Spearman rho {self.spearman_rho:.3f}")

    def to_dict(self) -> dict:
        return asdict(self)


def prediction_accuracy(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> PredictionAccuracy:
    p, m = np.asarray(predicted_ms, float), np.asarray(measured_ms, float)
    rel = (p - m) / m
    return PredictionAccuracy(n=len(m), within_5_pct=float(np.mean(np.abs(rel) <= 0.05)),
                              within_10_pct=float(np.mean(np.abs(rel) <= 0.10)),
                              rmspe=float(100 * np.sqrt(np.mean(rel ** 2))), kendall_tau=kendall_tau(p, m),
                              spearman_rho=spearman_rho(p, m))
