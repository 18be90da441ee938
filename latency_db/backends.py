"""How a device kind measures a ``.tflite`` file.

Backends are found by device kind in a registry; ``local`` (the host CPU) is
built in. Devices of other kinds (phones) are measured by farm workers from
jobs (:mod:`latency_db.farm`). Every backend returns an
:class:`akd_tf.benchmark.BenchmarkResult`.
"""

from __future__ import annotations

from typing import Callable, Protocol

from akd_tf.benchmark import BenchmarkResult, RunSettings, run_local_benchmark, run_local_benchmarks
from akd_tf.errors import InvalidInput
from latency_db.schema import Device


class Backend(Protocol):
    def __call__(self, device: Device, model_path: str, settings: RunSettings) -> BenchmarkResult: ...


def _local(device: Device, model_path: str, settings: RunSettings) -> BenchmarkResult:
    return run_local_benchmark(model_path, settings, core="auto" if device.core is None else device.core)


_BACKENDS: dict[str, Backend] = {"local": _local}


def measure_files(device: Device, model_paths: list[str], settings: RunSettings) -> list[BenchmarkResult]:
    """Measure several files on ``device`` in this process: on the host with their repeats interleaved
    (:func:`akd_tf.benchmark.run_local_benchmarks`), elsewhere one after another."""
    if device.kind == "local":
        return run_local_benchmarks(model_paths, settings, core="auto" if device.core is None else device.core)
    backend = backend_for(device)
    return [backend(device, path, settings) for path in model_paths]


def register_backend(kind: str, backend: Callable[[Device, str, RunSettings], BenchmarkResult]) -> None:
    _BACKENDS[kind] = backend


def has_backend(device: Device) -> bool:
    """Whether ``device`` is measured in this process (else farm workers measure it from jobs)."""
    return device.kind in _BACKENDS


def backend_for(device: Device) -> Backend:
    try:
        return _BACKENDS[device.kind]
    except KeyError:
        raise InvalidInput(f"device {device.name!r} is of kind {device.kind!r}, which no backend measures; "
                           f"known kinds: {', '.join(sorted(_BACKENDS))}") from None
