"""Latency of architectures on a device: measured where a whole-model measurement exists, else predicted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from akd_tf.benchmark import latency_us
from akd_tf.space import Arch, SearchSpace
from akd_tf.target import ModelTarget
from latency_db.corrections import describe_correction
from latency_db.devices import current_runtime, lookup_device
from latency_db.measurements import latest_measurement
from latency_db.features import FEATURES
from latency_db.predictor import ArchPricing, LutPredictor, MissingKeysError
from latency_db.store import Store
from latency_db.tables import THREADS, choose_table


PRICE_MISSING_HINT = ("; or price them from the table's kernel model (`akd-tf latency fit-kernels`, then "
                      "`akd-tf latency query --price-missing`)")


@dataclass(frozen=True)
class LatencyEstimate:
    """One architecture's latency and where it comes from.

    ``source`` is "measured" or "predicted"; ``predictor`` names the predictor version that answered
    ("calibration #N" or "raw LUT sum of table #T", with ", N of M operators priced by kernel model #K of
    table #T" when the kernel model priced some; empty for a measurement); ``detail`` says which
    measurement or how the predictor works; ``outside_region`` is empty, or says which features of the
    architecture lie outside the region the calibration was fitted on, or which priced operators lie
    outside the kernel model's (the answer is then an extrapolation). ``operators`` and
    ``kernel_priced`` count a prediction's operators and those the kernel model priced (None for a
    measurement); ``kernel_prices_us`` holds each entry the kernel model predicted, by key (microseconds):
    no priced entry is ever stored in the table.
    """

    arch: str
    latency_ms: float
    source: str
    detail: str
    predictor: str = ""
    outside_region: str = ""
    operators: int | None = None
    kernel_priced: int | None = None
    kernel_prices_us: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def query_latency(store: Store, device_name: str, space: SearchSpace, archs: Sequence[Arch],
                  target: ModelTarget, *, table_id: int | None = None,
                  price_missing: bool = False) -> list[LatencyEstimate]:
    """One estimate per arch, in order; predictions read the device's current table version (or ``table_id``).
    Reads only. Missing table keys raise :class:`~latency_db.predictor.MissingKeysError`, unless
    ``price_missing``: then the version's kernel model prices them (:mod:`latency_db.kernel_pricing`), and
    such an answer is the raw sum, never calibrated, and says so."""
    estimates: list[LatencyEstimate | None] = []
    with store.session() as session:
        device = lookup_device(session, device_name)  # None: this host has measured nothing yet
        if device is not None:
            runtime, threads = _measured_under(session, device, device_name, space, target, table_id)
        for arch in archs:
            row = None if device is None else latest_measurement(session, device, arch, target, runtime=runtime,
                                                                 num_threads=threads)
            estimates.append(None if row is None else LatencyEstimate(
                arch.to_string(), latency_us(row) / 1000.0, "measured",
                f"measurement #{row.id} ({row.count} runs, {row.finished_at:%Y-%m-%d %H:%M} UTC)"))
    unmeasured = [arch for arch, e in zip(archs, estimates) if e is None]
    if unmeasured:
        predictor = LutPredictor.load(store, device_name, space, target, table_id=table_id,
                                      price_missing=price_missing)
        try:
            predicted = iter(_predictions(predictor, unmeasured))
        except MissingKeysError as exc:
            raise exc.hinted(PRICE_MISSING_HINT) from None
        estimates = [next(predicted) if estimate is None else estimate for estimate in estimates]
    return estimates


def _measured_under(session, device, device_name: str, space: SearchSpace, target: ModelTarget,
                    table_id: int | None) -> tuple[str, int]:
    """The runtime and threads whose whole-model measurements answer a query: those of the chosen table
    version, else the device's current runtime with one thread (what the current version measures with)."""
    if table_id is None:
        return current_runtime(device), THREADS
    table = choose_table(session, device_name, space, target, table_id=table_id)
    return table.runtime, table.threads


def _predictions(predictor: LutPredictor, archs: Sequence[Arch]) -> list[LatencyEstimate]:
    cal = predictor.calibration
    version = f"raw LUT sum of table #{predictor.table_id}" if cal is None else f"calibration #{cal.id}"
    detail = f"uncalibrated LUT sum of table #{predictor.table_id}" if cal is None else describe_correction(cal)
    pricings = [predictor.pricing(arch) for arch in archs]
    features = np.array([p.features for p in pricings]).reshape(-1, len(FEATURES))
    latencies = predictor.predict_priced_ms(pricings)
    outside = predictor.outside_region(features)
    out = []
    for arch, pricing, latency, flag in zip(archs, pricings, latencies, outside):
        if pricing.kernel_priced:
            out.append(_priced_estimate(predictor, arch, pricing, float(latency)))
        else:
            out.append(LatencyEstimate(arch.to_string(), float(latency), "predicted", detail, version, flag,
                                       pricing.operators, 0))
    return out


def _priced_estimate(predictor: LutPredictor, arch: Arch, pricing: ArchPricing, latency_ms: float) -> LatencyEstimate:
    """A prediction some of whose operators the kernel model priced: the raw sum, and what priced it."""
    kernel, n, m = predictor.kernel, len(pricing.kernel_priced), pricing.operators
    version = f"raw LUT sum of table #{predictor.table_id}, {n} of {m} operators priced by {kernel.label}"
    cal = predictor.calibration
    skipped = "" if cal is None else f"; calibration #{cal.id} not applied (it corrects measured sums)"
    detail = (f"sum of {m - n} entries of table #{predictor.table_id} and {n} operators priced by "
              f"{kernel.description}{skipped}")
    outside = ""
    if pricing.kernel_outside:
        outside = (f"{len(pricing.kernel_outside)} of {n} priced operators outside {kernel.label}'s fitted "
                   f"region (the first: {pricing.kernel_outside[0]})")
    return LatencyEstimate(arch.to_string(), latency_ms, "predicted", detail, version, outside, m, n,
                           predictor.kernel_prices_us(pricing.kernel_priced))
