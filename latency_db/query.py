"""Latency of architectures on a device: measured where a whole-model measurement exists, else predicted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from akd_tf.benchmark import latency_us
from akd_tf.space import Arch, SearchSpace
from akd_tf.target import ModelTarget
from latency_db.corrections import describe_correction
from latency_db.devices import lookup_device
from latency_db.measurements import latest_measurement
from latency_db.predictor import LutPredictor, predict_from_features
from latency_db.store import Store


@dataclass(frozen=True)
class LatencyEstimate:
    """One architecture's latency and where it comes from.

    ``source`` is "measured" or "predicted"; ``predictor`` names the predictor version that answered
    ("calibration #N" or "raw LUT sum"; empty for a measurement); ``detail`` says which measurement or
    how the predictor works; ``outside_region`` is empty, or says which features of the architecture lie
    outside the region the calibration was fitted on (the answer is then an extrapolation).
    """

    arch: str
    latency_ms: float
    source: str
    detail: str
    predictor: str = ""
    outside_region: str = ""

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
    unmeasured = [arch for arch, e in zip(archs, estimates) if e is None]
    if unmeasured:
        predictor = LutPredictor.load(store, device_name, space, target, table_id=table_id)
        cal = predictor.calibration
        version = f"raw LUT sum of table #{predictor.table_id}" if cal is None else f"calibration #{cal.id}"
        detail = (f"uncalibrated LUT sum of table #{predictor.table_id}" if cal is None
                  else describe_correction(cal))
        features = predictor.features_many(unmeasured)
        predicted = iter(zip(unmeasured, predict_from_features(predictor.correction, features),
                             predictor.outside_region(features)))
        for i, estimate in enumerate(estimates):
            if estimate is None:
                arch, latency, outside = next(predicted)
                estimates[i] = LatencyEstimate(arch.to_string(), float(latency), "predicted", detail, version, outside)
    return estimates
