"""Does a latency reproduce? One exported model measured several times on one device.

MLPerf Mobile accepts a result only when it replicates within 5% over 5 tries; :func:`measure_tries`
applies that rule: the tries agree when their latencies' spread, ``max / min - 1``, is at most
:data:`AGREEMENT`. Each try is stored as its own measurement.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from akd_tf.benchmark import RunSettings, latency_us
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch
from akd_tf.target import ModelTarget
from latency_db.devices import measuring_device
from latency_db.measure import WHOLE_MODEL_SETTINGS, export_untrained, measure_tflite
from latency_db.schema import Measurement
from latency_db.store import Store

AGREEMENT = 0.05  # largest spread (max / min - 1) of the tries' latencies that counts as reproducing
DEFAULT_TRIES = 5


@dataclass(frozen=True)
class Tries:
    """The measurements of one model's tries, in order, and whether they agree."""

    measurement_ids: tuple[int, ...]
    latencies_ms: tuple[float, ...]

    @property
    def spread(self) -> float:
        """``max / min - 1`` of the latencies: 0.03 means the slowest try took 3% longer than the fastest."""
        return max(self.latencies_ms) / min(self.latencies_ms) - 1.0

    @property
    def agree(self) -> bool:
        return self.spread <= AGREEMENT

    def to_dict(self) -> dict:
        return {"tries": [{"measurement": i, "latency_ms": m} for i, m in zip(self.measurement_ids, self.latencies_ms)],
                "spread": self.spread, "agree": self.agree, "agreement": AGREEMENT}


def measure_tries(store: Store, device_name: str, arch: Arch, target: ModelTarget, tries: int = DEFAULT_TRIES, *,
                  settings: RunSettings = WHOLE_MODEL_SETTINGS, wait_timeout_s: float | None = None,
                  on_try: Callable[[int, Measurement], None] | None = None) -> Tries:
    """Export ``arch`` once and measure it ``tries`` times on the device, one after another (a phone: one farm
    job each, waited for); ``on_try(number, row)`` after each, numbered from 1."""
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 2:
        raise InvalidInput(f"tries must be an int >= 2 to compare measurements, got {tries!r}")
    with store.session() as session:
        measuring_device(session, device_name)  # an unknown device, or another host's, fails before the export
    rows = []
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = export_untrained(arch, target, Path(tmp) / "model.tflite", 0)
        for number in range(1, tries + 1):
            row = measure_tflite(store, device_name, arch, target, exported.path, exported.sha256, settings=settings,
                                 run_key=uuid.uuid4().hex, wait_timeout_s=wait_timeout_s)
            rows.append(row)
            if on_try is not None:
                on_try(number, row)
    return Tries(tuple(row.id for row in rows), tuple(latency_us(row) / 1000.0 for row in rows))
