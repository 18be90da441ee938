"""Building the per-device latency lookup table, one operator micro-model at a time.

Every operator key of a space at one input shape, class count and
quantization (:func:`latency_db.keys.enumerate_operators`) becomes a Keras
micro-model, is exported with the parity check, measured on the device and
stored in its own transaction, in the device's table version for the space as
defined now, this quantization, the threads and the device's runtime
(:mod:`latency_db.tables`; created by the build when new). Keys already stored in
that version are skipped, so an interrupted build resumes where it stopped and
two builders never store a key twice; after an interpreter upgrade or an edit of
the space the build fills a new version instead of mixing timings.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from akd_tf.benchmark import RunSettings
from akd_tf.space import SearchSpace
from latency_db import farm
from latency_db.backends import backend_for
from latency_db.devices import measuring_device
from latency_db.keys import Operator, enumerate_operators
from akd_tf.target import ModelTarget
from latency_db.schema import LutEntry, TimedRunStats, utcnow
from latency_db.store import Store
from latency_db.tables import THREADS, TableIdentity, current_version, ensure_table

# Micro-models run for microseconds: 100 runs and 0.1 s keep noise low at about 0.1 s per key.
LUT_SETTINGS = RunSettings(num_runs=100, warmup_runs=5, min_secs=0.1, warmup_min_secs=0.02)


@dataclass(frozen=True)
class LutBuildSummary:
    total: int
    already_stored: int
    measured: int
    seconds: float
    queued: int = 0  # farm jobs queued (phones): measured by `akd-tf devices serve` workers
    table_id: int | None = None  # the table version built


@dataclass(frozen=True)
class BuildPlan:
    """What a build of the device's table for a space at a target measures: every operator, those its
    current version lacks, and that version (``table_id`` None until a build creates it)."""

    identity: TableIdentity
    table_id: int | None
    operators: list[Operator]
    missing: list[Operator]


def plan_build(store: Store, device_name: str, space: SearchSpace, target: ModelTarget,
               threads: int = THREADS) -> BuildPlan:
    """The :class:`BuildPlan` of a build, read without writing (what ``build-lut --dry-run`` lists)."""
    operators = enumerate_operators(space, target.input_shape, target.classes)
    with store.session() as session:
        identity, table = current_version(session, device_name, space, target.quantization, threads)
        have = set() if table is None else set(session.scalars(select(LutEntry.key)
                                                               .where(LutEntry.table_id == table.id)))
    return BuildPlan(identity, None if table is None else table.id, operators,
                     [op for op in operators if op.key not in have])


def export_operator(op: Operator, quantization: str, out_path: str, seed: int = 0) -> str:
    """Build, prepare and export (with parity) the micro-model of ``op``; returns ``out_path``."""
    from akd_tf import export
    from akd_tf.models import build_operator

    model = export.untrained_for_export(lambda: build_operator(op), op.input_shape, seed)
    export.export_tflite(model, out_path, quantization, min_int8_agreement=0.0, seed=seed)
    return out_path


# Micro-models converted ahead per chunk on the host, then timed with the machine quiet.
AHEAD_CHUNK = 64


def _converted_ahead(ops: list[Operator], quantization: str, workdir: Path, workers: int):
    """Yield (op, path of its .tflite) in order, for timing on the host: each chunk of :data:`AHEAD_CHUNK` is
    converted first, in ``workers`` processes on every core, and only then handed out to be timed, so no
    conversion runs while a micro-model is timed (the timing-context study, benchmarks/timing_context.py).
    """
    if workers == 0:
        for i, op in enumerate(ops):
            yield op, export_operator(op, quantization, str(workdir / f"op{i}.tflite"))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for start in range(0, len(ops), AHEAD_CHUNK):
            chunk = list(enumerate(ops[start:start + AHEAD_CHUNK], start=start))
            paths = list(pool.map(export_operator, [op for _, op in chunk], itertools.repeat(quantization),
                                  [str(workdir / f"op{i}.tflite") for i, _ in chunk]))
            yield from zip((op for _, op in chunk), paths)


def _exported(ops: list[Operator], quantization: str, workdir: Path, workers: int):
    """Yield (op, path of its .tflite) in order, conversions running ahead in ``workers`` other processes
    while the caller works on earlier ones (queuing farm jobs: a phone's timings do not share this host)."""
    if workers == 0:
        yield from _converted_ahead(ops, quantization, workdir, 0)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = iter(enumerate(ops))
        futures = collections.deque()

        def submit(count: int) -> None:
            for i, op in itertools.islice(pending, count):
                futures.append((op, pool.submit(export_operator, op, quantization, str(workdir / f"op{i}.tflite"))))

        submit(2 * workers)  # keep the workers ahead of the caller
        while futures:
            op, future = futures.popleft()
            submit(1)
            yield op, future.result()


def build_lut(store: Store, device_name: str, space: SearchSpace, target: ModelTarget, *,
              settings: RunSettings = LUT_SETTINGS, limit: int | None = None, workers: int = 0,
              progress: Callable[[Operator], None] | None = None, wait: bool = True,
              wait_timeout_s: float | None = None,
              wait_progress: Callable[[int, int, int], None] | None = None) -> LutBuildSummary:
    """Measure and store every missing key (at most ``limit``); ``progress`` is called after each key.

    With ``workers`` > 0, micro-models are converted in that many processes: on the host a chunk at a
    time before it is timed, so nothing else of ours runs while a key is timed (:func:`_converted_ahead`).
    On a phone each key is queued as a farm job (``progress`` after each is queued), then, with
    ``wait``, waited for (``wait_progress(done, failed, total)``); re-running queues nothing twice.
    """
    start = time.perf_counter()
    operators = enumerate_operators(space, target.input_shape, target.classes)
    with store.session() as session:
        device = measuring_device(session, device_name)
        table_id = ensure_table(session, device, TableIdentity.current(device, space, target.quantization,
                                                                       settings.num_threads)).id
        have = set(session.scalars(select(LutEntry.key).where(LutEntry.table_id == table_id)))
    missing = [op for op in operators if op.key not in have]
    todo = missing if limit is None else missing[:limit]
    if farm.is_farm_device(device):
        return _queue_on_farm(store, device_name, table_id, todo, target, settings, workers, progress, wait,
                              wait_timeout_s, wait_progress, start, len(operators), len(operators) - len(missing))
    backend = backend_for(device)
    measured = 0
    with tempfile.TemporaryDirectory(prefix="akd-tf-lut-") as tmp:
        for op, path in _converted_ahead(todo, target.quantization, Path(tmp), workers):
            result = backend(device, path, settings)
            os.unlink(path)
            try:
                with store.session() as session:
                    session.add(LutEntry(table_id=table_id, key=op.key, **TimedRunStats.of(result),
                                         settings=result.to_dict()["settings"], measured_at=utcnow()))
                measured += 1
            except IntegrityError:
                pass  # another builder stored this key meanwhile
            if progress is not None:
                progress(op)
    return LutBuildSummary(len(operators), len(operators) - len(missing), measured, time.perf_counter() - start,
                           table_id=table_id)


def _queue_on_farm(store, device_name, table_id, todo, target, settings, workers, progress, wait, wait_timeout_s,
                   wait_progress, start, total, already) -> LutBuildSummary:
    """Queue a job per key into table version ``table_id``; keys already queued by an earlier, interrupted run are
    neither converted nor queued."""
    requests = [farm.FarmRequest("lut", {"key": op.key, "table_id": table_id}, subject=op) for op in todo]

    def exported(pending: list[farm.FarmRequest]):
        with tempfile.TemporaryDirectory(prefix="akd-tf-lut-") as tmp:
            for _op, path in _exported([r.subject for r in pending], target.quantization, Path(tmp), workers):
                tflite = Path(path).read_bytes()
                os.unlink(path)
                yield tflite

    outcomes = farm.request_many(store, device_name, requests, settings, tflite=exported, wait=wait,
                                 wait_timeout_s=wait_timeout_s, wait_progress=wait_progress,
                                 on_queued=None if progress is None else lambda request: progress(request.subject))
    if not wait:
        return LutBuildSummary(total, already, 0, time.perf_counter() - start, queued=len(outcomes), table_id=table_id)
    farm.raise_failed(outcomes)
    return LutBuildSummary(total, already, len(outcomes), time.perf_counter() - start, queued=len(outcomes),
                           table_id=table_id)
