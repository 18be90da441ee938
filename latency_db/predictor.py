"""Predicting the latency of architectures never measured, from the lookup table.

The prediction is the sum of one table version's latencies (each entry's
:data:`akd_tf.benchmark.LATENCY_STATISTIC`; the version is chosen by
:func:`latency_db.tables.choose_table`) of every operator
of the architecture (stem, layers, head), corrected by that version's newest
accepted calibration for the space and shape (one that beat the raw sum on its
held-out archs) when one exists: ``scale * sum + ms_per_weight_mb * weight_mb +
offset``, where ``weight_mb`` is the size of the model's weights (the part of
a whole model's cost that per-operator micro-models, each with its own weights
hot in cache, do not see). A key missing from the
table is an error that lists the missing keys and the command that builds
them; it is never priced at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select

from akd_tf.benchmark import LATENCY_STATISTIC
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.operators import Shape
from akd_tf.space import Arch, SearchSpace
from akd_tf.walk import block_stage, walk_stages
from akd_tf.target import WEIGHT_BYTES, ModelTarget
from latency_db.schema import Calibration, LutEntry
from latency_db.store import Store
from latency_db.tables import THREADS, TableIdentity, build_command, choose_table


class MissingKeysError(MissingData):
    """Some operators of an architecture have no latency-table entry."""

    def __init__(self, device: str, space: SearchSpace, target: ModelTarget, keys: Sequence[str],
                 table_id: int | None = None):
        self.keys = list(keys)
        shown = ", ".join(self.keys[:5]) + (f", ... ({len(self.keys) - 5} more)" if len(self.keys) > 5 else "")
        table = "" if table_id is None else f" in table #{table_id}"
        super().__init__(
            f"{len(self.keys)} latency-table key(s) missing on device {device!r}{table} ({target.quantization}): "
            f"{shown}; build them with: {build_command(device, space, target)}")


def calibration_filter(table_id: int, space: SearchSpace, target: ModelTarget):
    """The calibrations of table version ``table_id`` for ``space`` at ``target``'s shape."""
    return (Calibration.table_id == table_id, Calibration.space == space.name,
            Calibration.resolution == target.resolution, Calibration.channels == target.channels,
            Calibration.classes == target.classes)


@dataclass(frozen=True)
class _PricedBlock:
    """One block of one walk, priced: table sum (us), shape handed on, keys the table lacks, parameters."""

    latency_us: float
    output_shape: Shape
    missing: tuple[str, ...]
    params: int


@dataclass
class LutPredictor:
    """One table version in memory, for one device, space and target; ``calibration`` may be ``None``."""

    device: str
    space: SearchSpace
    target: ModelTarget
    table_us: dict[str, float]
    calibration: Calibration | None = None
    table_id: int | None = None  # the version read (None: a table given in memory)

    def __post_init__(self) -> None:
        self._blocks: dict[tuple, _PricedBlock] = {}
        self._token_slices: list[tuple[int, slice]] = []
        offset = 0
        for b in range(1, self.space.num_blocks + 1):
            n = len(self.space.block_decisions(b))
            self._token_slices.append((b, slice(offset, offset + n)))
            offset += n

    @classmethod
    def load(cls, store: Store, device_name: str, space: SearchSpace, target: ModelTarget, *,
             table_id: int | None = None, threads: int = THREADS) -> "LutPredictor":
        """The device's current table version for ``space`` and ``target`` (or version ``table_id``); reads only."""
        with store.session() as session:
            table = choose_table(session, device_name, space, target, table_id=table_id, threads=threads)
            identity = TableIdentity.of(table).describe()
            rows = session.execute(select(LutEntry.key, getattr(LutEntry, LATENCY_STATISTIC)).where(
                LutEntry.table_id == table.id)).all()
            calibration = session.scalar(select(Calibration).where(*calibration_filter(table.id, space, target),
                                                                   Calibration.accepted.is_(True))
                                         .order_by(Calibration.id.desc()).limit(1))
        if not rows:
            raise MissingData(f"latency table #{table.id} of device {device_name!r} ({identity}) has no entries "
                              f"yet; build them with: {build_command(device_name, space, target)}")
        return cls(device_name, space, target, dict(rows), calibration, table.id)

    def _block(self, block: tuple[int, tuple[int, ...]], input_shape: Shape) -> "_PricedBlock":
        """The priced layers of block ``(index, block tokens)`` fed with ``input_shape``, memoized."""
        memo_key = (block, input_shape)
        hit = self._blocks.get(memo_key)
        if hit is None:
            index, block_tokens = block
            stage = block_stage(self.space.block_choice(index, block_tokens), input_shape)
            keys = [layer.key for layer in stage.layers]
            hit = _PricedBlock(latency_us=sum(self.table_us.get(k, 0.0) for k in keys),
                               output_shape=stage.output_shape,
                               missing=tuple(k for k in keys if k not in self.table_us),
                               params=sum(layer.params for layer in stage.layers))
            self._blocks[memo_key] = hit
        return hit

    def features(self, arch: Arch) -> tuple[float, float]:
        """(LUT sum in ms, weight size in MB) of ``arch``: the inputs of the calibration."""
        blocks = [((b, arch.tokens[tokens]),) for b, tokens in self._token_slices]
        total, params, missing = 0.0, 0, []
        for stage in walk_stages(self.space, self.target.input_shape, self.target.classes, blocks, self._block):
            if isinstance(stage, _PricedBlock):
                total += stage.latency_us
                params += stage.params
                missing.extend(stage.missing)
            else:  # the stem or the head
                key = stage.key
                if key not in self.table_us:
                    missing.append(key)
                total += self.table_us.get(key, 0.0)
                params += stage.params
        if missing:
            raise MissingKeysError(self.device, self.space, self.target, list(dict.fromkeys(missing)), self.table_id)
        return total / 1000.0, params * WEIGHT_BYTES[self.target.quantization] / 1e6

    def lut_sum_us(self, arch: Arch) -> float:
        """Sum of the table's medians over every operator of ``arch`` (microseconds)."""
        return self.features(arch)[0] * 1000.0

    def predict_ms(self, arch: Arch) -> float:
        lut_ms, weight_mb = self.features(arch)
        if self.calibration is None:
            return lut_ms
        return apply_calibration((self.calibration.scale, self.calibration.ms_per_weight_mb,
                                  self.calibration.offset_ms), lut_ms, weight_mb)

    def predict_many_ms(self, archs: Iterable[Arch]) -> np.ndarray:
        return np.array([self.predict_ms(a) for a in archs])


# ---------------------------------------------------------------------------
# Accuracy of a predictor and its calibration
# ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PredictionAccuracy:
    n: int
    within_5_pct: float  # fraction of predictions within +-5% of the measurement
    within_10_pct: float
    rmspe: float  # root mean squared percentage error, in percent
    kendall_tau: float

    def summary(self) -> str:
        return (f"on {self.n} held-out archs: {self.within_5_pct:.1%} within +-5%, {self.within_10_pct:.1%} within "
                f"+-10%, RMSPE {self.rmspe:.2f}%, Kendall tau {self.kendall_tau:.3f}")


def prediction_accuracy(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> PredictionAccuracy:
    p, m = np.asarray(predicted_ms, float), np.asarray(measured_ms, float)
    rel = (p - m) / m
    return PredictionAccuracy(n=len(m), within_5_pct=float(np.mean(np.abs(rel) <= 0.05)),
                              within_10_pct=float(np.mean(np.abs(rel) <= 0.10)),
                              rmspe=float(100 * np.sqrt(np.mean(rel ** 2))), kendall_tau=kendall_tau(p, m))


def apply_calibration(coefficients: tuple[float, float, float], lut_ms: float, weight_mb: float) -> float:
    """``scale * lut_ms + ms_per_weight_mb * weight_mb + offset_ms`` for ``(scale, ms_per_weight_mb, offset_ms)``."""
    scale, per_mb, offset = coefficients
    return scale * lut_ms + per_mb * weight_mb + offset


def fit_calibration(lut_ms: Sequence[float], weight_mb: Sequence[float],
                    measured_ms: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``(scale, ms_per_weight_mb, offset_ms)`` minimising the relative error to ``measured_ms``."""
    x, w, y = (np.asarray(v, float) for v in (lut_ms, weight_mb, measured_ms))
    if len(x) < 3:
        raise InvalidInput(f"a calibration needs at least 3 measured archs to fit, got {len(x)}")
    design = np.stack([x, w, np.ones_like(x)], axis=1) / y[:, None]  # residual / measured
    coefficients, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return tuple(float(c) for c in coefficients)
