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
table is an error that lists the missing keys, the table's shapes and the
command that builds them; it is never priced at zero.

Only when asked (``price_missing``), the keys the version lacks (an input
resolution or class count it never measured) are priced by its kernel model
(:mod:`latency_db.kernel_pricing`): such an architecture's latency is the raw
sum of its entries and those prices, never calibrated (a calibration is fitted
on measured sums at one shape), and :class:`ArchPricing` says which operators
were priced and which of them lie outside the kernel model's fitted region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select

from akd_tf.benchmark import LATENCY_STATISTIC
from akd_tf.errors import MissingData
from akd_tf.operators import Shape
from akd_tf.space import Arch, SearchSpace
from akd_tf.walk import block_stage, walk_stages
from akd_tf.target import ModelTarget
from latency_db.corrections import Correction, Region, correction_of, region_of
from latency_db.features import FEATURE_NAMES, FEATURES, LUT_MS, operator_features
from latency_db.kernel_features import kernel_features_many
from latency_db.kernel_pricing import KernelPricing, load_kernel_pricing
from latency_db.schema import Calibration, LutEntry
from latency_db.store import Store
from latency_db.tables import THREADS, TableIdentity, build_command, choose_table, table_shapes


OPERATORS = FEATURE_NAMES.index("operators")


class MissingKeysError(MissingData):
    """Some operators of an architecture have no latency-table entry."""

    def __init__(self, device: str, space: SearchSpace, target: ModelTarget, keys: Sequence[str],
                 table_id: int | None = None, table_shapes: str = "", hint: str = ""):
        self.keys = list(keys)
        self._parts = (device, space, target, keys, table_id, table_shapes)
        shown = ", ".join(self.keys[:5]) + (f", ... ({len(self.keys) - 5} more)" if len(self.keys) > 5 else "")
        table = "" if table_id is None else f" in table #{table_id}"
        holds = f"; table #{table_id} holds {table_shapes}" if table_id is not None and table_shapes else ""
        super().__init__(
            f"{len(self.keys)} latency-table key(s) missing on device {device!r}{table} ({target.quantization}) "
            f"at {target.resolution}x{target.resolution}x{target.channels} with {target.classes} classes: "
            f"{shown}{holds}; build them with: {build_command(device, space, target)}{hint}")

    def hinted(self, hint: str) -> "MissingKeysError":
        """The same error with ``hint`` (what else the caller offers, e.g. ``"; or ..."``) after the build command."""
        return MissingKeysError(*self._parts, hint=hint)


def calibration_filter(table_id: int, space: SearchSpace, target: ModelTarget):
    """The calibrations of table version ``table_id`` for ``space`` at ``target``'s shape."""
    return (Calibration.table_id == table_id, Calibration.space == space.name,
            Calibration.resolution == target.resolution, Calibration.channels == target.channels,
            Calibration.classes == target.classes)


@dataclass(frozen=True)
class _PricedBlock:
    """One block of one walk, priced: its features summed over its layers (:data:`FEATURES` order), the
    shape it hands on, the keys the table lacks and nothing priced, the keys the kernel model priced and
    the region flags of those outside its fitted region."""

    features: np.ndarray
    output_shape: Shape
    missing: tuple[str, ...]
    kernel_priced: tuple[str, ...] = ()
    kernel_outside: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchPricing:
    """One architecture priced: its :data:`FEATURES`, its operators' keys the kernel model priced (empty: every
    operator has an entry) and, for those outside the kernel model's fitted region, why."""

    features: np.ndarray
    kernel_priced: tuple[str, ...]
    kernel_outside: tuple[str, ...]

    @property
    def operators(self) -> int:
        return int(self.features[OPERATORS])


@dataclass
class LutPredictor:
    """One table version in memory, for one device, space and target, with the calibration that corrects its
    sums (``None``: the raw sum). ``region`` is the feature range that calibration was fitted on. With a
    ``kernel`` model, keys the table lacks are priced by it instead of being an error."""

    device: str
    space: SearchSpace
    target: ModelTarget
    table_us: dict[str, float]
    calibration: Calibration | None = None
    table_id: int | None = None  # the version read (None: a table given in memory)
    kernel: KernelPricing | None = None
    table_shapes: str = ""  # the shapes the version holds, for errors

    def __post_init__(self) -> None:
        self.correction: Correction | None = None if self.calibration is None else correction_of(self.calibration)
        self.region: Region | None = None if self.calibration is None else region_of(self.calibration)
        self._blocks: dict[tuple, _PricedBlock] = {}
        self._ends: dict[str, _PricedBlock] = {}
        self._kernel_us: dict[str, float] = {}
        self._kernel_flags: dict[str, str] = {}
        self._token_slices: list[tuple[int, slice]] = []
        offset = 0
        for b in range(1, self.space.num_blocks + 1):
            n = len(self.space.block_decisions(b))
            self._token_slices.append((b, slice(offset, offset + n)))
            offset += n

    @classmethod
    def load(cls, store: Store, device_name: str, space: SearchSpace, target: ModelTarget, *,
             table_id: int | None = None, threads: int = THREADS, price_missing: bool = False) -> "LutPredictor":
        """The device's current table version for ``space`` and ``target`` (or version ``table_id``); reads only.
        With ``price_missing``, the version's newest kernel model prices the keys it lacks (none stored is a
        ``MissingData`` naming the command that fits one)."""
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
            shapes = table_shapes(session, [table])[table.id].shape()
            kernel = load_kernel_pricing(session, table, space, device_name) if price_missing else None
        return cls(device_name, space, target, dict(rows), calibration, table.id, kernel, shapes)

    def _priced(self, ops, output_shape: Shape) -> _PricedBlock:
        """``ops`` priced: their entries, the kernel model's prices for the keys the table lacks (with a kernel
        model), their features summed."""
        lacking = [op for op in ops if op.key not in self.table_us]
        if lacking and self.kernel is not None:
            self._kernel_price(lacking)
        total = np.zeros(len(FEATURES))
        for op in ops:
            latency = self.table_us.get(op.key)
            total += operator_features(op, self._kernel_us.get(op.key, 0.0) if latency is None else latency,
                                       self.target.quantization)
        keys = tuple(op.key for op in lacking)
        if self.kernel is None:
            return _PricedBlock(total, output_shape, missing=keys)
        return _PricedBlock(total, output_shape, missing=(), kernel_priced=keys,
                            kernel_outside=tuple(self._kernel_flags[k] for k in keys if self._kernel_flags[k]))

    def _kernel_price(self, ops) -> None:
        """Price the operators not priced yet with the kernel model, with their region flags."""
        new = [op for op in dict((op.key, op) for op in ops if op.key not in self._kernel_us).values()]
        if not new:
            return
        features = kernel_features_many(new, self.target.quantization)
        prices, flags = self.kernel.model.predict_us(features), self.kernel.regions.outside(features)
        for op, latency, flag in zip(new, prices, flags):
            self._kernel_us[op.key] = float(latency)
            self._kernel_flags[op.key] = flag

    def kernel_prices_us(self, keys: Iterable[str]) -> dict[str, float]:
        """The kernel model's price (microseconds) of each of ``keys`` it priced, by key, in order."""
        return {key: self._kernel_us[key] for key in dict.fromkeys(keys)}

    def _block(self, block: tuple[int, tuple[int, ...]], input_shape: Shape) -> "_PricedBlock":
        """The priced layers of block ``(index, block tokens)`` fed with ``input_shape``, memoized."""
        memo_key = (block, input_shape)
        hit = self._blocks.get(memo_key)
        if hit is None:
            index, block_tokens = block
            stage = block_stage(self.space.block_choice(index, block_tokens), input_shape)
            hit = self._priced(stage.layers, stage.output_shape)
            self._blocks[memo_key] = hit
        return hit

    def _end(self, stage) -> _PricedBlock:
        """The stem or the head, priced, memoized by its key."""
        hit = self._ends.get(stage.key)
        if hit is None:
            hit = self._priced((stage,), (0, 0, 0))
            self._ends[stage.key] = hit
        return hit

    def _walk(self, arch: Arch) -> list[_PricedBlock]:
        """The priced stages of ``arch`` (stem, blocks, head); :class:`MissingKeysError` when the table lacks
        some of its operators and no kernel model prices them."""
        blocks = [((b, arch.tokens[tokens]),) for b, tokens in self._token_slices]
        priced = [stage if isinstance(stage, _PricedBlock) else self._end(stage)
                  for stage in walk_stages(self.space, self.target.input_shape, self.target.classes, blocks,
                                           self._block)]
        missing = [key for stage in priced for key in stage.missing]
        if missing:
            raise MissingKeysError(self.device, self.space, self.target, list(dict.fromkeys(missing)), self.table_id,
                                   self.table_shapes)
        return priced

    def features(self, arch: Arch) -> np.ndarray:
        """The :data:`~latency_db.features.FEATURES` of ``arch``: what every prediction starts from.
        :class:`MissingKeysError` when the table lacks some of its operators (and no kernel model prices them)."""
        priced = self._walk(arch)
        return sum(stage.features for stage in priced[1:]) + priced[0].features

    def features_many(self, archs: Iterable[Arch]) -> np.ndarray:
        """One row of :meth:`features` per arch."""
        return np.array([self.features(a) for a in archs]).reshape(-1, len(FEATURES))

    def pricing(self, arch: Arch) -> ArchPricing:
        """``arch``'s features with which of its operators the kernel model priced."""
        priced = self._walk(arch)
        return ArchPricing(sum(stage.features for stage in priced[1:]) + priced[0].features,
                           tuple(key for stage in priced for key in stage.kernel_priced),
                           tuple(flag for stage in priced for flag in stage.kernel_outside))

    def lut_sum_us(self, arch: Arch) -> float:
        """Sum of the table's latencies over every operator of ``arch`` (microseconds)."""
        return float(self.features(arch)[LUT_MS]) * 1000.0

    def predict_ms(self, arch: Arch) -> float:
        return float(self.predict_many_ms([arch])[0])

    def predict_many_ms(self, archs: Iterable[Arch]) -> np.ndarray:
        """The predicted latency (ms) of each arch: the calibration applied to its features, or the raw sum;
        with a kernel model, :meth:`predict_priced_ms`."""
        if self.kernel is not None:
            return self.predict_priced_ms([self.pricing(a) for a in archs])
        return predict_from_features(self.correction, self.features_many(archs))

    def predict_priced_ms(self, pricings: Sequence[ArchPricing]) -> np.ndarray:
        """The latency (ms) of each priced arch: calibrated when every operator has an entry, else the raw sum of
        its entries and the kernel model's prices (a calibration is fitted on measured sums)."""
        features = np.array([p.features for p in pricings]).reshape(-1, len(FEATURES))
        latency = predict_from_features(self.correction, features)
        raw = np.array([bool(p.kernel_priced) for p in pricings], dtype=bool)
        latency[raw] = features[raw, LUT_MS]
        return latency

    def outside_region(self, features: np.ndarray) -> list[str]:
        """Per row of :meth:`features_many`, ``""`` or which features lie outside the region the calibration was
        fitted on."""
        return [""] * len(features) if self.region is None else self.region.outside(features)


def predict_from_features(correction: Correction | None, features: np.ndarray) -> np.ndarray:
    """Latencies (ms) of feature rows: the ``correction`` applied, or the raw table sum without one."""
    return features[:, LUT_MS].copy() if correction is None else correction.predict_ms(features)
