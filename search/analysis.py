"""The numbers behind search reports and the paper's experiments (numpy only, no plotting).

* :func:`pareto_front` — children no other child beats on both accuracy and latency (Fig. 4 B);
* :func:`linear_fit` — least-squares line with R² (MACs against latency, Fig. 4 E);
* :func:`pca` — principal components of one-hot architecture vectors (Figs. 5 and 6);
* :func:`onehot_matrix`, :func:`top_by_accuracy`, :func:`block_grid` — the mean one-hot vector of a run's
  best children and its layout as blocks x options (Fig. 8);
* :func:`relative_gain` and :func:`spread` — Eq. 1, ``[KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from akd_tf.errors import InvalidInput
from akd_tf.space import SearchSpace


def pareto_front(accuracy: Sequence[float], latency: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points not dominated when accuracy is maximized and latency minimized.

    Point ``p`` is dominated when some ``q`` has ``latency[q] <= latency[p]`` and
    ``accuracy[q] >= accuracy[p]`` with at least one of the two strict; identical points do not
    dominate each other. O(n log n).
    """
    accuracy = np.asarray(accuracy, dtype=float)
    latency = np.asarray(latency, dtype=float)
    if accuracy.shape != latency.shape or accuracy.ndim != 1:
        raise InvalidInput(f"accuracy and latency must be 1-D and of one length, got shapes "
                           f"{accuracy.shape} and {latency.shape}")
    if not (np.all(np.isfinite(accuracy)) and np.all(np.isfinite(latency))):
        raise InvalidInput("accuracy and latency must be finite numbers")
    on_front = np.zeros(len(accuracy), dtype=bool)
    order = np.lexsort((-accuracy, latency))  # latency ascending, then accuracy descending
    best_faster = -math.inf  # best accuracy among strictly faster points
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and latency[order[j]] == latency[order[i]]:
            j += 1
        group = order[i:j]
        group_best = accuracy[group[0]]  # the group is sorted by accuracy, descending
        for index in group:
            on_front[index] = accuracy[index] > best_faster and accuracy[index] == group_best
        best_faster = max(best_faster, group_best)
        i = j
    return on_front


@dataclass(frozen=True)
class LinearFit:
    """``y = slope * x + intercept`` by least squares over ``n`` points; ``r2`` its coefficient of determination."""

    slope: float
    intercept: float
    r2: float
    n: int

    def equation(self, y_name: str, x_name: str, digits: int = 4) -> str:
        sign = "+" if self.intercept >= 0 else "-"
        return (f"{y_name} = {self.slope:.{digits}g} × {x_name} {sign} {abs(self.intercept):.{digits}g}  "
                f"(R² = {self.r2:.3f}, n = {self.n})")


def linear_fit(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Least-squares line through ``(x, y)``; needs two points with different ``x``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InvalidInput(f"x and y must be 1-D and of one length, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidInput("x and y must be finite numbers")
    if len(x) < 2 or np.ptp(x) == 0:
        raise InvalidInput(f"a line needs at least two points with different x, got {len(x)} point(s)")
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (slope * x + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return LinearFit(float(slope), float(intercept), r2, len(x))


@dataclass(frozen=True)
class PCAResult:
    """``coords``: (n, k) projections; ``explained``: fraction of the variance each component holds;
    ``components``: (k, width) unit directions; ``mean``: the centre the data were shifted by."""

    coords: np.ndarray
    explained: np.ndarray
    components: np.ndarray
    mean: np.ndarray


def pca(matrix: np.ndarray, k: int = 2) -> PCAResult:
    """The first ``k`` principal components of the rows of ``matrix`` (by SVD of the centred data).

    Each component's sign is fixed so that its largest loading is positive, so the same data always
    give the same picture. Components beyond the data's rank are zero.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise InvalidInput(f"PCA needs a 2-D matrix of at least two rows, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise InvalidInput("PCA needs finite numbers")
    if not 1 <= k <= matrix.shape[1]:
        raise InvalidInput(f"k must be between 1 and the width {matrix.shape[1]}, got {k}")
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = np.zeros((k, matrix.shape[1]))
    rank = min(k, len(singular))
    components[:rank] = vt[:rank]
    for row in components:
        if np.any(row):
            row *= np.sign(row[np.argmax(np.abs(row))])
    variance = singular ** 2
    explained = np.zeros(k)
    if variance.sum() > 0:
        explained[:rank] = variance[:rank] / variance.sum()
    return PCAResult(centred @ components.T, explained, components, mean)


def onehot_matrix(space: SearchSpace, archs: Sequence[str]) -> np.ndarray:
    """Rows of one-hot vectors (width ``space.onehot_width``) of architectures given as canonical strings."""
    if not archs:
        return np.zeros((0, space.onehot_width), dtype=np.float32)
    return np.stack([space.parse(a).onehot() for a in archs])


def check_range(latency_range: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` if ``low <= high``; ``ValueError`` naming both otherwise."""
    low, high = latency_range
    if not low <= high:
        raise InvalidInput(f"latency range must be LOW <= HIGH, got {low} > {high}")
    return low, high


def top_by_accuracy(trials: Sequence[dict], k: int, latency_range: tuple[float, float] | None = None) -> list[dict]:
    """The ``k`` finished trials with the highest accuracy (ties: lower trial number first), optionally
    only those whose latency lies in ``[low, high]`` ms."""
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    chosen = [t for t in trials if t["status"] == "done" and t["accuracy"] is not None]
    if latency_range is not None:
        low, high = check_range(latency_range)
        chosen = [t for t in chosen if t["latency_ms"] is not None and low <= t["latency_ms"] <= high]
    return sorted(chosen, key=lambda t: (-t["accuracy"], t["number"]))[:k]


@dataclass(frozen=True)
class BlockGrid:
    """A one-hot-width vector laid out as blocks (rows) x options (columns).

    Column groups are the block's decisions in token order (``groups``: field name, first column,
    column count); a decision with fewer values in some block leaves that block's extra cells NaN.
    ``labels[b][c]`` names the choice in block ``b`` behind column ``c`` ("" for padding).
    """

    values: np.ndarray
    labels: list[list[str]]
    groups: list[tuple[str, int, int]]
    rows: list[str]


def block_grid(space: SearchSpace, vector: Sequence[float]) -> BlockGrid:
    """Lay out ``vector`` (one value per one-hot position of ``space``) as a :class:`BlockGrid`."""
    vector = np.asarray(vector, dtype=float)
    if vector.shape != (space.onehot_width,):
        raise InvalidInput(f"vector must have the space's one-hot width {space.onehot_width}, got shape {vector.shape}")
    blocks = [space.block_decisions(b) for b in range(1, space.num_blocks + 1)]
    widths = [max(block[i].size for block in blocks) for i in range(len(blocks[0]))]
    groups, start = [], 0
    for decision, width in zip(blocks[0], widths):
        groups.append((decision.field, start, width))
        start += width
    values = np.full((len(blocks), start), np.nan)
    labels = [[""] * start for _ in blocks]
    offset = 0
    for b, block in enumerate(blocks):
        for decision, (_, first, _) in zip(block, groups):
            values[b, first:first + decision.size] = vector[offset:offset + decision.size]
            labels[b][first:first + decision.size] = decision.labels
            offset += decision.size
    return BlockGrid(values, labels, groups, [f"block {b}" for b in range(1, len(blocks) + 1)])


# ---------------------------------------------------------------------------
# Relative gain (Eq. 1)
# ---------------------------------------------------------------------------

ARMS = ("akd", "nas")  # searched with KD / with hard labels
TRAININGS = ("kd", "label")  # final training with KD / with hard labels


def relative_gain(table: dict) -> float:
    """Eq. 1 from a 2x2 accuracy table ``{arm: {training: top1}}`` (arms ``akd``/``nas``, trainings
    ``kd``/``label``): ``[KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)]``."""
    for arm in ARMS:
        for training in TRAININGS:
            value = table.get(arm, {}).get(training)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"the table needs a finite accuracy for {arm} trained with {training}, "
                                   f"got {value!r}")
    return (table["akd"]["kd"] - table["akd"]["label"]) - (table["nas"]["kd"] - table["nas"]["label"])


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (``None`` for one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    def describe(self, scale: float = 1.0, unit: str = "") -> str:
        text = f"{self.mean * scale:+.2f}{unit}"
        return text + (f" ± {self.std * scale:.2f}{unit} (n = {self.n} seeds)" if self.std is not None
                       else " (1 seed)")


def spread(values: Sequence[float]) -> Spread:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise InvalidInput("spread needs at least one value")
    return Spread(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None, len(values))
