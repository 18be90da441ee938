"""What the timing context does to latencies on the host: a busy neighbour core, cold caches, parts vs whole.

Three studies, on --keys random latency-table operators and --archs random whole architectures
(seeded, exported once, measured pinned to the last core with one interpreter thread):

1. Neighbour: each model measured with the other core quiet and with it converting micro-models
   (what a table build's conversion worker does), interleaved over --rounds rounds so drift cancels.
   Reported: the busy/quiet ratio of the latency (the minimum of the timed runs) per model.
2. Hot vs cold weights: each operator timed as the table times it (its weights hot in cache after the
   first run) and cold (before each timed run a buffer larger than the last-level cache is written,
   evicting the operator's weights and activations). Reported: the cold/hot ratio.
3. Whole vs parts: each architecture's whole-model latency against the sum of its operators timed hot and
   timed cold, both measured here, in the same quiet context.

    .venv/bin/python benchmarks/timing_context.py [--resolution 32 --classes 10 --keys 24 --archs 8 --rounds 3]

The headline (the median busy/quiet ratio of the whole models) is printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from akd_tf.benchmark import RunSettings, resolve_core, run_local_benchmark
from akd_tf.interpreter import make_interpreter
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from akd_tf.walk import walk
from latency_db.lut import LUT_SETTINGS, export_operator
from latency_db.keys import enumerate_operators
from latency_db.measure import WHOLE_MODEL_SETTINGS, export_untrained

EVICT_BYTES = 96 * 2 ** 20  # larger than this host's 32 MB last-level cache, with room to spare
ONE_REPEAT = RunSettings(repeats=1)  # benchmark_model's defaults once: the neighbour study times single runs


def _convert_forever(ops, workdir: str, core: int) -> None:
    """The busy neighbour: convert micro-models on ``core`` until killed."""
    os.sched_setaffinity(0, {core})
    i = 0
    while True:
        export_operator(ops[i % len(ops)], "none", str(Path(workdir) / f"neighbour{i % 2}.tflite"))
        i += 1


def _latency_us(path, settings: RunSettings) -> float:
    return run_local_benchmark(path, settings).min_us


def neighbour_study(paths: list[str], settings: RunSettings, ops, rounds: int, workdir: str) -> np.ndarray:
    """busy/quiet ratio of each model's latency, each condition measured ``rounds`` times (best kept)."""
    measuring = resolve_core("auto")
    others = sorted(set(os.sched_getaffinity(0)) - {measuring})
    if not others:
        raise SystemExit("the neighbour study needs a second core")
    quiet = {p: [] for p in paths}
    busy = {p: [] for p in paths}
    context = multiprocessing.get_context("spawn")
    for r in range(rounds):
        for condition in (("quiet", "busy") if r % 2 == 0 else ("busy", "quiet")):
            neighbour = None
            if condition == "busy":
                neighbour = context.Process(target=_convert_forever, args=(ops, workdir, others[0]), daemon=True)
                neighbour.start()
                time.sleep(8.0)  # past its TensorFlow import: converting, not loading
            try:
                for path in paths:
                    (busy if neighbour else quiet)[path].append(_latency_us(path, settings))
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.join()
    return np.array([min(busy[p]) / min(quiet[p]) for p in paths])


def _evict(buffer: np.ndarray) -> None:
    buffer += 1  # writes every line: the caches now hold this buffer, not the model


def hot_and_cold_us(path: str, runs: int = 60) -> tuple[float, float]:
    """(hot, cold) minimum of ``runs`` single-thread invokes of the model at ``path``."""
    interpreter = make_interpreter(path, num_threads=1)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.random.default_rng(0).uniform(-1, 1, detail["shape"])
                               .astype(detail["dtype"]))
    interpreter.invoke()
    hot = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        hot.append(time.perf_counter_ns() - start)
    buffer = np.zeros(EVICT_BYTES // 8)
    cold = []
    for _ in range(runs):
        _evict(buffer)
        start = time.perf_counter_ns()
        interpreter.invoke()
        cold.append(time.perf_counter_ns() - start)
    return min(hot) / 1000, min(cold) / 1000


def quartiles(values) -> str:
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return "min {:.3f}, quartiles {:.3f} / {:.3f} / {:.3f}, max {:.3f}".format(*q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--keys", type=int, default=24)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space, target = get_space(), ModelTarget(args.resolution, args.classes)
    ops = enumerate_operators(space, target.input_shape, target.classes)
    keys = random.Random(args.seed).sample(ops, args.keys)
    archs = space.sample_many(args.archs, args.seed + 1)
    core = resolve_core("auto")
    with tempfile.TemporaryDirectory(prefix="akd-tf-context-") as tmp:
        print(f"exporting {len(keys)} operators and {len(archs)} archs at {args.resolution}x{args.resolution}",
              flush=True)
        key_paths = [export_operator(op, "none", f"{tmp}/op{i}.tflite") for i, op in enumerate(keys)]
        arch_paths = [export_untrained(a, target, Path(f"{tmp}/arch{i}.tflite"), 0).path for i, a in enumerate(archs)]

        print("1. neighbour: busy/quiet latency ratio (min of the timed runs; best of each condition's rounds)")
        key_ratio = neighbour_study(key_paths, LUT_SETTINGS, keys, args.rounds, tmp)
        print(f"   operators ({len(keys)}, table settings): {quartiles(key_ratio)}; "
              f"{np.mean(np.abs(key_ratio - 1) > 0.03):.0%} moved by more than 3%", flush=True)
        arch_ratio = neighbour_study(arch_paths, ONE_REPEAT, keys, args.rounds, tmp)
        print(f"   whole models ({len(archs)}, benchmark_model defaults): {quartiles(arch_ratio)}; "
              f"{np.mean(np.abs(arch_ratio - 1) > 0.03):.0%} moved by more than 3%", flush=True)

        print("2. hot vs cold weights (operators, min of 60 invokes each way, pinned to core "
              f"{core}, other core quiet)")
        os.sched_setaffinity(0, {core})
        hot_cold = np.array([hot_and_cold_us(p) for p in key_paths])
        print(f"   cold/hot: {quartiles(hot_cold[:, 1] / hot_cold[:, 0])}", flush=True)

        print("3. whole vs sum of parts (the archs above, quiet, operators timed here hot and cold)")
        part_paths: dict[str, str] = {}
        whole, hot_sum, cold_sum = [], [], []
        for arch, path in zip(archs, arch_paths):
            hot, cold = 0.0, 0.0
            for op in walk(arch, target.input_shape, target.classes):
                if op.key not in part_paths:
                    part_paths[op.key] = export_operator(op, "none", f"{tmp}/part{len(part_paths)}.tflite")
                h, c = hot_and_cold_us(part_paths[op.key], runs=30)
                hot, cold = hot + h, cold + c
            whole.append(_latency_us(path, WHOLE_MODEL_SETTINGS))
            hot_sum.append(hot)
            cold_sum.append(cold)
        whole, hot_sum, cold_sum = map(np.array, (whole, hot_sum, cold_sum))
        print(f"   whole / hot sum:  {quartiles(whole / hot_sum)}")
        print(f"   whole / cold sum: {quartiles(whole / cold_sum)}")
    print(f"whole-model latency with a converting neighbour, median busy/quiet: {np.median(arch_ratio):.3f}")


if __name__ == "__main__":
    main()
