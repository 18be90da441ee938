"""A table version's kernel model: fitted on its measured entries, stored with it, loaded to price what it lacks.

:func:`measured_operators` reads a version's entries as operators of a search space (every operator of the
space at each input shape and class count the version holds, :func:`latency_db.keys.enumerate_operators`,
matched by key). :func:`fit_table_kernel_model` judges the kernel model on the version's largest input
resolution (fitted without its entries, then pricing them: what a query at a resolution the table never
measured can expect), fits it on every entry and stores it (:class:`latency_db.schema.KernelModel`).
:func:`load_kernel_pricing` gives a predictor the newest one
(:class:`latency_db.predictor.LutPredictor` with ``price_missing``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from akd_tf.benchmark import LATENCY_STATISTIC
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.operators import Operator
from akd_tf.space import SearchSpace
from akd_tf.target import DEFAULT_TARGET, ModelTarget
from latency_db.accuracy import PredictionAccuracy, prediction_accuracy
from latency_db.keys import enumerate_operators
from latency_db.kernel_features import kernel_features_many
from latency_db.kernel_models import MIN_ENTRIES, KernelCostModel, KindRegions, fit_kernel_model, library_version
from latency_db.schema import KernelModel, LatencyTable, LutEntry
from latency_db.store import Store
from latency_db.tables import TableShapes, choose_table, table_shapes

# Any valid class count reads a table without head entries: only head keys depend on the classes.
_NO_HEADS_CLASSES = 2


def fit_command(device_name: str, space: SearchSpace, table_id: int) -> str:
    return f"akd-tf latency fit-kernels --device {device_name} --space {space.name} --table {table_id}"


@dataclass(frozen=True)
class MeasuredOperators:
    """A table version's entries that are operators of a space: the operators, their entries (microseconds,
    :data:`~akd_tf.benchmark.LATENCY_STATISTIC`), the input resolutions of the networks each belongs to,
    the version's shapes, and how many of its entries are no such operator."""

    operators: list[Operator]
    latency_us: np.ndarray
    resolutions: list[frozenset[int]]
    shapes: TableShapes
    unmatched: int


def measured_operators(session: Session, table: LatencyTable, space: SearchSpace) -> MeasuredOperators:
    """The entries of ``table`` read as operators of ``space`` at every input shape and class count the table
    holds. No entries, or none that is an operator of ``space``, is a ``MissingData`` saying so."""
    entries = dict(session.execute(select(LutEntry.key, getattr(LutEntry, LATENCY_STATISTIC))
                                   .where(LutEntry.table_id == table.id)).all())
    if not entries:
        raise MissingData(f"latency table #{table.id} has no entries: a kernel model is fitted on measured entries")
    shapes = table_shapes(session, [table])[table.id]
    found: dict[str, Operator] = {}
    resolutions: dict[str, set[int]] = {}
    for resolution, channels in shapes.inputs:
        if not space.min_resolution <= resolution <= space.max_resolution:
            continue  # a stem of another space's table
        for classes in shapes.classes or (_NO_HEADS_CLASSES,):
            for op in enumerate_operators(space, (resolution, resolution, channels), classes):
                if op.key in entries:
                    found.setdefault(op.key, op)
                    resolutions.setdefault(op.key, set()).add(resolution)
    if not found:
        raise MissingData(f"none of latency table #{table.id}'s {len(entries)} entries ({shapes.shape()}) is an "
                          f"operator of space {space.name!r}: fit its kernel model with the space it was built for")
    operators = list(found.values())
    return MeasuredOperators(operators, np.array([entries[op.key] for op in operators], float),
                             [frozenset(resolutions[op.key]) for op in operators], shapes, len(entries) - len(found))


@dataclass(frozen=True)
class HeldOut:
    """A kernel model's accuracy per entry on the largest resolution's entries, fitted without them."""

    resolution: int
    n_fit: int
    accuracy: PredictionAccuracy

    def describe(self) -> str:
        return (f"{self.accuracy.n} entries only at {self.resolution}x{self.resolution}, priced by a model "
                f"fitted on the {self.n_fit} of the other resolutions")


def held_out_accuracy(measured: MeasuredOperators, quantization: str, seed: int = 0) -> HeldOut | None:
    """Fit without the entries of the largest resolution's networks, price them: ``None`` with one resolution
    (or none of its entries its own)."""
    every = sorted(set().union(*measured.resolutions))
    if len(every) < 2:
        return None
    largest = every[-1]
    held = np.array([r == {largest} for r in measured.resolutions])
    fit = np.array([largest not in r for r in measured.resolutions])
    if not held.any() or fit.sum() < MIN_ENTRIES:
        return None
    features = kernel_features_many(measured.operators, quantization)
    model = fit_kernel_model(features[fit], measured.latency_us[fit], seed)
    accuracy = prediction_accuracy(model.predict_us(features[held]), measured.latency_us[held])
    return HeldOut(largest, int(fit.sum()), accuracy)


@dataclass(frozen=True)
class KernelFitReport:
    """What :func:`fit_table_kernel_model` fitted and stored."""

    kernel_model_id: int
    table_id: int
    n_entries: int
    shapes: str
    held_out: HeldOut | None
    fit_s: float
    unmatched: int


def fit_table_kernel_model(store: Store, device_name: str, space: SearchSpace, *, quantization: str | None = None,
                           table_id: int | None = None, seed: int = 0) -> KernelFitReport:
    """Fit and store the kernel model of the device's table version for ``space``: version ``table_id``, else the
    current one of ``quantization`` (default: ``table_id``'s, else none), on all its entries, with its held-out
    accuracy (:func:`held_out_accuracy`). Measures nothing."""
    start = time.perf_counter()
    with store.session() as session:
        chosen = None if table_id is None else session.get(LatencyTable, table_id)
        quantization = quantization or (DEFAULT_TARGET.quantization if chosen is None else chosen.quantization)
        # a version holds every shape; the target only names the quantization (and the shape a build would take)
        target = ModelTarget(DEFAULT_TARGET.resolution, DEFAULT_TARGET.classes, DEFAULT_TARGET.channels, quantization)
        table = choose_table(session, device_name, space, target, table_id=table_id)
        measured = measured_operators(session, table, space)
        table_id = table.id
    held_out = held_out_accuracy(measured, quantization, seed)
    features = kernel_features_many(measured.operators, quantization)
    model = fit_kernel_model(features, measured.latency_us, seed)
    with store.session() as session:
        row = KernelModel(table_id=table_id, space=space.name, method=model.method, library=library_version(),
                          model=model.to_dict(), region=KindRegions.of(features).to_dict(),
                          shapes=measured.shapes.shape(), n_entries=len(measured.operators),
                          holdout=None if held_out is None else held_out.describe(),
                          n_holdout=None if held_out is None else held_out.accuracy.n,
                          within_10_pct=None if held_out is None else held_out.accuracy.within_10_pct,
                          rmspe=None if held_out is None else held_out.accuracy.rmspe)
        session.add(row)
        session.flush()
        row_id = row.id
    return KernelFitReport(row_id, table_id, len(measured.operators), measured.shapes.shape(), held_out,
                           time.perf_counter() - start, measured.unmatched)


def describe_kernel_model(row: KernelModel) -> str:
    """``kernel model #2 of table #1: cost+lightgbm on 3278 entries at 32x32x3 or 64x64x3 with 10 classes
    (87.5% of 1639 held-out entries within +-10%)``: a stored kernel model for answers and listings."""
    accuracy = ("no held-out accuracy: one input resolution" if row.n_holdout is None else
                f"{row.within_10_pct:.1%} of {row.n_holdout} held-out entries within +-10%, RMSPE {row.rmspe:.1f}%")
    return (f"kernel model #{row.id} of table #{row.table_id}: {row.method} on {row.n_entries} entries at "
            f"{row.shapes} ({accuracy})")


@dataclass(frozen=True)
class KernelPricing:
    """A kernel model loaded to price a table version's missing entries: the model, its fitted regions, its name
    in answers (``kernel model #2 of table #1``) and what it is (:func:`describe_kernel_model`)."""

    model: KernelCostModel
    regions: KindRegions
    label: str
    description: str


def load_kernel_pricing(session: Session, table: LatencyTable, space: SearchSpace, device_name: str) -> KernelPricing:
    """The newest kernel model of ``table``; none is a ``MissingData`` naming the command that fits one, and a
    model fitted on another space's operators an ``InvalidInput``."""
    row = session.scalar(select(KernelModel).where(KernelModel.table_id == table.id)
                         .order_by(KernelModel.id.desc()).limit(1))
    if row is None:
        raise MissingData(f"latency table #{table.id} has no kernel model to price missing entries with; fit one "
                          f"with: {fit_command(device_name, space, table.id)}")
    if row.space != space.name:
        raise InvalidInput(f"kernel model #{row.id} of table #{table.id} was fitted on operators of space "
                           f"{row.space!r}, not {space.name!r}")
    return KernelPricing(KernelCostModel.from_dict(row.model), KindRegions.from_dict(row.region),
                         f"kernel model #{row.id} of table #{row.table_id}", describe_kernel_model(row))
