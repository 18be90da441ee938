"""Latency of architectures on a device: measured where a whole-model measurement exists, else predicted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from akd_tf.benchmark import latency_us
from akd_tf.space import Arch, SearchSpace
from latency_db.devices import lookup_device
from akd_tf.target import ModelTarget
from latency_db.measurements import latest_measurement
from latency_db.predictor import LutPredictor
from latency_db.store import Store


@dataclass(frozen=True)
class LatencyEstimate:
    arch: str
    latency_ms: float
    source: str  # "measured" | "predicted"
    detail: str  # which measurement, or which calibration the prediction used

    def to_dict(self) -> dict:
        return asdict(self)


def query_latency(store: Store, device_name: str, space: SearchSpace, archs: Sequence[Arch],
                  target: ModelTarget, *, table_id: int | None = None) -> list[LatencyEstimate]:
    """One estimate per arch, in order; predictions read the device's current table version (or ``table_id``).
    Reads only. Missing table keys raise :class:`~latency_db.predictor.MissingKeysError`."""
    estimates: list[LatencyEstimate | None] = []
    with store.session() as session:
        device = lookup_device(session, device_name)  # None: this host has measured nothing yet
        for arch in archs:
            row = None if device is None else latest_measurement(session, device, arch, target)
            estimates.append(None if row is None else LatencyEstimate(
                arch.to_string(), latency_us(row) / 1000.0, "measured",
                f"measurement #{row.id} ({row.count} runs, {row.finished_at:%Y-%m-%d %H:%M} UTC)"))
    if any(e is None for e in estimates):
        predictor = LutPredictor.load(store, device_name, space, target, table_id=table_id)
        cal = predictor.calibration
        detail = (f"uncalibrated LUT sum of table #{predictor.table_id}" if cal is None else
                  f"LUT sum of table #{predictor.table_id} x {cal.scale:.4f} + {cal.ms_per_weight_mb:.4f} ms/MB "
                  f"weights + {cal.offset_ms:.4f} ms (calibration #{cal.id}, "
                  f"{cal.within_10_pct:.0%} within +-10% on {cal.n_holdout} held-out archs)")
        estimates = [e if e is not None else LatencyEstimate(arch.to_string(), predictor.predict_ms(arch),
                                                             "predicted", detail)
                     for e, arch in zip(estimates, archs)]
    return estimates
