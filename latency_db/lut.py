"""Building the per-device latency lookup table, one operator micro-model at a time.

Every operator key of a space at one input shape, class count and
quantization (:func:`latency_db.keys.enumerate_operators`) becomes a Keras
micro-model, is exported with the parity check, measured on the device and
stored in its own transaction. Keys already stored are skipped, so an
interrupted build resumes where it stopped and two builders never store a key
twice.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from akd_tf.benchmark import RunSettings
from akd_tf.space import SearchSpace
from latency_db.backends import backend_for
from latency_db.devices import get_device
from latency_db.keys import Operator, enumerate_operators
from latency_db.measure import ModelTarget
from latency_db.schema import LutEntry, utcnow
from latency_db.store import Store

# Micro-models run for microseconds: 100 runs and 0.1 s keep noise low at about 0.1 s per key.
LUT_SETTINGS = RunSettings(num_runs=100, warmup_runs=5, min_secs=0.1, warmup_min_secs=0.02)


@dataclass(frozen=True)
class LutBuildSummary:
    total: int
    already_stored: int
    measured: int
    seconds: float


def stored_keys(store: Store, device_name: str, quantization: str) -> set[str]:
    with store.session() as session:
        device = get_device(session, device_name)
        return set(session.scalars(select(LutEntry.key).where(LutEntry.device_id == device.id,
                                                               LutEntry.quantization == quantization)))


def missing_operators(store: Store, device_name: str, space: SearchSpace, target: ModelTarget) -> tuple[list[Operator], list[Operator]]:
    """(every operator of the space at ``target``, those the device's table lacks)."""
    operators = enumerate_operators(space, target.input_shape, target.classes)
    have = stored_keys(store, device_name, target.quantization)
    return operators, [op for op in operators if op.key not in have]


def measure_operator(op: Operator, quantization: str, measure: Callable[[str], object], workdir: Path, seed: int = 0):
    """Build, prepare, export (with parity) and measure the micro-model of ``op``."""
    import tf_keras as keras

    from akd_tf import export
    from akd_tf.models import build_operator

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_operator(op)
    export.prepare_untrained(model, export.random_images(op.input_shape, export.BATCHNORM_CALIBRATION_SAMPLES, seed))
    path = workdir / "operator.tflite"
    export.export_tflite(model, path, quantization, min_int8_agreement=0.0, seed=seed)
    return measure(str(path))


def build_lut(store: Store, device_name: str, space: SearchSpace, target: ModelTarget, *,
              settings: RunSettings = LUT_SETTINGS, limit: int | None = None,
              progress: Callable[[Operator], None] | None = None) -> LutBuildSummary:
    """Measure and store every missing key (at most ``limit``); ``progress`` is called after each key."""
    start = time.perf_counter()
    operators, missing = missing_operators(store, device_name, space, target)
    todo = missing if limit is None else missing[:limit]
    with store.session() as session:
        device = get_device(session, device_name)
    backend = backend_for(device)
    measured = 0
    with tempfile.TemporaryDirectory(prefix="akd-tf-lut-") as tmp:
        for op in todo:
            result = measure_operator(op, target.quantization, lambda p: backend(device, p, settings), Path(tmp))
            try:
                with store.session() as session:
                    session.add(LutEntry(device_id=device.id, key=op.key, quantization=target.quantization,
                                         median_us=result.median_us, mean_us=result.mean_us, std_us=result.std_us,
                                         min_us=result.min_us, p90_us=result.p90_us, count=result.count,
                                         settings=result.to_dict()["settings"], measured_at=utcnow()))
                measured += 1
            except IntegrityError:
                pass  # another builder stored this key meanwhile
            if progress is not None:
                progress(op)
    return LutBuildSummary(len(operators), len(operators) - len(missing), measured, time.perf_counter() - start)
