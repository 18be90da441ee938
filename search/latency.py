"""The latency of a search's children on its device, and where each number came from.

In order of preference: a whole-model measurement already stored for this device and target
("measured"); with ``measure=True``, a new measurement (in this process for the host, as farm jobs
for phones, a whole controller step at once so the farm measures them in parallel; "measured");
otherwise the latency table's prediction ("predicted"). A child whose latency cannot be had gets an error
and its kind of failure (:mod:`search.failures`: none of these is the architecture's fault).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sqlalchemy.exc import SQLAlchemyError

from akd_tf.benchmark import latency_us
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch
from akd_tf.target import ModelTarget
from latency_db import farm
from latency_db.devices import get_device, is_host_name, lookup_device
from latency_db import measure
from latency_db.measurements import latest_measurement, measurement_by_run_key
from latency_db.predictor import LutPredictor
from latency_db.store import Store
from search.failures import Failure, failure_reason


@dataclass(frozen=True)
class ChildLatency:
    """One child's latency (``None`` with ``error`` and its failure ``kind`` when it could not be had) and how
    long getting it took."""

    latency_ms: float | None
    source: str | None  # "measured" | "predicted"
    measurement_id: int | None
    seconds: float
    error: str | None = None
    kind: str | None = None  # a kind of search.failures.FAILURE_KINDS when error is set

    @property
    def failure(self) -> Failure | None:
        return None if self.error is None else Failure(self.kind, self.error)


def _failed(kind: str, reason: str, start: float) -> ChildLatency:
    return ChildLatency(None, None, None, time.perf_counter() - start, reason, kind)


class LatencySource:
    """Latencies of architectures on ``device`` at ``target`` (see the module docstring)."""

    def __init__(self, store: Store, device: str, target: ModelTarget, *, measure: bool,
                 wait_timeout_s: float | None = None):
        self.store, self.device, self.target, self.measure = store, device, target, measure
        self.wait_timeout_s = wait_timeout_s
        self._predictor: LutPredictor | None = None
        with store.session() as session:  # a host measures in this process, also before its device row exists
            self._farm = not is_host_name(device) and farm.is_farm_device(get_device(session, device))

    def check(self, space) -> None:
        """Fail before any training if children could get no latency: ``ValueError`` saying what to do."""
        if self.measure:
            return
        try:
            predictor = self._lut(space)
            for largest in (False, True):
                predictor.predict_ms(space.extreme(largest))
        except ValueError as exc:
            raise InvalidInput(f"{exc}\nOr pass --measure to measure every child on {self.device!r} instead "
                               "of predicting it.") from None

    def _lut(self, space) -> LutPredictor:
        if self._predictor is None:
            self._predictor = LutPredictor.load(self.store, self.device, space, self.target)
        return self._predictor

    def latencies(self, archs: Sequence[Arch]) -> list[ChildLatency]:
        """One :class:`ChildLatency` per arch, in order; a child that cannot be measured gets an ``error``."""
        found = self._stored(archs)
        missing = [i for i, row in enumerate(found) if row is None]
        if missing and self.measure:
            fresh = (self._measure_on_farm if self._farm else self._measure_here)([archs[i] for i in missing])
            for i, latency in zip(missing, fresh):
                found[i] = latency
        elif missing:
            for i in missing:
                start = time.perf_counter()
                try:
                    found[i] = ChildLatency(self._lut(archs[i].space).predict_ms(archs[i]), "predicted", None,
                                            time.perf_counter() - start)
                except ValueError as exc:  # a key the table lacks: the child fails, the search goes on
                    found[i] = _failed("latency-unknown", failure_reason(exc), start)
        return found

    def _stored(self, archs: Sequence[Arch]) -> list[ChildLatency | None]:
        with self.store.session() as session:
            device = lookup_device(session, self.device)  # None: this host has measured nothing yet
            rows = [None if device is None else latest_measurement(session, device, arch, self.target)
                    for arch in archs]
            return [None if row is None else ChildLatency(latency_us(row) / 1000.0, "measured", row.id, 0.0)
                    for row in rows]

    def _measure_here(self, archs: Sequence[Arch]) -> list[ChildLatency]:
        """Export each arch untrained and measure it in this process (as ``measure_arch`` does), in two phases
        so that a failure says which one failed: the conversion or the measurement."""
        return [self._measure_one_here(arch) for arch in archs]

    def _measure_one_here(self, arch: Arch) -> ChildLatency:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
            try:
                exported = measure.export_untrained(arch, self.target, Path(tmp) / "model.tflite", 0)
            except Exception as exc:  # the converter's failure is this child's, not the search's
                return _failed("conversion-failed", failure_reason(exc), start)
            try:
                row = measure.measure_tflite(self.store, self.device, arch, self.target, exported.path,
                                             exported.sha256)
            except SQLAlchemyError:
                raise
            except Exception as exc:  # so is the benchmark's
                return _failed("measurement-failed", failure_reason(exc), start)
        return ChildLatency(latency_us(row) / 1000.0, "measured", row.id, time.perf_counter() - start)

    def _measure_on_farm(self, archs: Sequence[Arch]) -> list[ChildLatency]:
        """Queue every arch (deterministic run keys: a resumed search finds its jobs), then wait for all."""
        start = time.perf_counter()
        outcomes = measure.request_archs(self.store, self.device, archs, self.target,
                                         settings=measure.WHOLE_MODEL_SETTINGS, wait_timeout_s=self.wait_timeout_s,
                                         keep_going=True)
        seconds = (time.perf_counter() - start) / max(1, len(archs))
        out = []
        for outcome in outcomes:
            if outcome.exception is not None:  # its export or queueing failed: this child fails
                out.append(ChildLatency(None, None, None, seconds, failure_reason(outcome.exception),
                                        "conversion-failed"))
            elif outcome.state == "failed":
                out.append(ChildLatency(None, None, None, seconds,
                                        f"farm job {outcome.job.job_id} failed: {outcome.failure}", "farm-job-failed"))
            else:
                row = measurement_by_run_key(self.store, outcome.job.run_key)
                out.append(ChildLatency(latency_us(row) / 1000.0, "measured", row.id, seconds))
        return out
