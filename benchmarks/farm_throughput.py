"""Farm throughput: jobs per minute with 1, 2 and 4 emulated phones, and the overhead per job.

Each emulated phone runs in its own process (an ADB daemon on loopback whose
benchmark_model really runs the model on this host), is registered in a fresh
SQLite database, and one farm worker in this process serves all of them. For
each phone count the same model is queued ``--jobs-per-phone`` times per phone
(32 by default, so the one-off connection and start-up costs are spread as over
a real table build) with benchmark_model's default protocol (50 runs / 1 s, warm-up 0.5 s), and the
clock runs from the first job queued to the last result stored.

Overhead per job = (phone-seconds per job - the benchmark tool's own run time)
/ the tool's own run time, where the tool's time is init + first inference +
warm-up runs + timed runs as reported in its output, and phone-seconds per job
= phones x wall time / jobs. Scaling is jobs/min against the 1-phone run in the
same process (emulated phones share the host's cores, so it cannot pass the
core count).

    .venv/bin/python benchmarks/farm_throughput.py [--phones 1 2 4] [--jobs-per-phone 32] [--resolution 96]

The headline (overhead per job with 1 phone and the scaling) is printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import akd_tf  # noqa: F401
from akd_tf import export
from akd_tf.benchmark import RunSettings
from akd_tf.space import get_space


def _serve_phone(profile: str, state_dir: str, ports, stop) -> None:
    from devicefarm.emulator import EmulatedPhone, Faults

    # Temperatures pinned at a cool 35 C: waiting for a hot phone to cool is physics, not the farm's overhead,
    # and the emulator's heat model would otherwise add cool-down waits once a run is long enough to heat it.
    with EmulatedPhone(profile, state_dir=state_dir, faults=Faults(temperature_c=35.0)).start() as phone:
        ports.put(phone.port)
        stop.wait()


def _start_phones(n: int, workdir: Path, context):
    stop, ports = context.Event(), context.Queue()
    processes = [context.Process(target=_serve_phone, args=("pixel4", str(workdir / f"phone{i}"), ports, stop),
                                 daemon=True) for i in range(n)]
    for process in processes:
        process.start()
    return [f"127.0.0.1:{ports.get(timeout=120)}" for _ in processes], stop, processes


def tool_seconds(result) -> float:
    """benchmark_model's own run time from its reported figures (init, first, warm-up, timed)."""
    counts = re.findall(r"count=(\d+)", result["raw_output"])
    warmup_count = int(counts[0]) if len(counts) >= 2 else 0
    total_us = (result["init_us"] + result["first_inference_us"] + warmup_count * result["warmup_mean_us"]
                + result["count"] * result["mean_us"])
    return total_us / 1e6


def run(n_phones: int, jobs_per_phone: int, tflite: bytes, workdir: Path, binary: Path, context) -> dict:
    from devicefarm.phones import register_phone
    from devicefarm.runner import PhoneLimits
    from devicefarm.worker import FarmWorker, WorkerOptions
    from latency_db import farm
    from latency_db.schema import Job
    from latency_db.devices import get_device
    from latency_db.store import open_store
    from latency_db.tables import TableIdentity, ensure_table

    store = open_store(f"sqlite:///{workdir / f'farm{n_phones}.db'}")
    addresses, stop, processes = _start_phones(n_phones, workdir / f"run{n_phones}", context)
    limits = PhoneLimits()
    try:
        names = []
        for i, address in enumerate(addresses):
            names.append(register_phone(store, address, name=f"phone{i}", benchmark_binary=binary,
                                        limits=limits).device.name)
        settings = RunSettings()  # benchmark_model's defaults
        with store.session() as session:  # a table version for the jobs' entries (lut jobs store into one)
            device = get_device(session, names[0])
            table_id = ensure_table(session, device, TableIdentity.current(device, get_space(), "none")).id
        start = time.perf_counter()
        submitted = [farm.submit(store, names[0], kind="lut", tflite=tflite, settings=settings,
                                 payload={"key": f"job{j}", "table_id": table_id})
                     for j in range(n_phones * jobs_per_phone)]
        worker = FarmWorker(store, names, worker_id="bench", options=WorkerOptions(
            poll_s=0.05, max_jobs=len(submitted), limits=limits))
        worker.run()
        farm.await_jobs(store, [s.job_id for s in submitted], timeout_s=600, poll_s=0.02)
        wall = time.perf_counter() - start
        with store.session() as session:
            results = [session.get(Job, s.job_id).result for s in submitted]
            raws = [session.get(Job, s.job_id).raw_output for s in submitted]
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=10)
    tool = statistics.mean(tool_seconds({**r, "raw_output": raw}) for r, raw in zip(results, raws))
    per_job = n_phones * wall / len(submitted)
    return {"phones": n_phones, "jobs": len(submitted), "wall_s": wall, "jobs_per_min": 60 * len(submitted) / wall,
            "tool_s": tool, "phone_s_per_job": per_job, "overhead_pct": 100 * (per_job - tool) / tool}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs-per-phone", type=int, default=32)  # a farm runs many jobs; 8 let start-up dominate
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("AKD_TF_ADB_KEY", str(Path(tempfile.gettempdir()) / "akd-tf-bench-keys" / "adbkey"))
    context = multiprocessing.get_context("spawn")
    arch = get_space().sample_many(1, args.seed)[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="akd-tf-farm-") as tmp:
        workdir = Path(tmp)
        model = export.build_for_export(arch, (args.resolution, args.resolution, 3), 10)
        tflite = Path(export.export_tflite(model, workdir / "model.tflite").path).read_bytes()
        binary = workdir / "benchmark_model"
        binary.write_bytes(b"the emulated phone runs its own benchmark_model\n")
        for n in args.phones:
            row = run(n, args.jobs_per_phone, tflite, workdir, binary, context)
            rows.append(row)
            print(f"{n} phone(s): {row['jobs']} jobs in {row['wall_s']:.1f} s = {row['jobs_per_min']:.1f} jobs/min; "
                  f"tool {row['tool_s']:.2f} s/job, phone busy {row['phone_s_per_job']:.2f} s/job, "
                  f"overhead {row['overhead_pct']:.1f}%", flush=True)
    base = rows[0]["jobs_per_min"]
    print(f"arch {arch.to_string()} at {args.resolution}x{args.resolution}; host cores: {len(os.sched_getaffinity(0))}")
    scaling = ", ".join(f"{r['phones']} phones {r['jobs_per_min'] / base:.2f}x" for r in rows[1:])
    print(f"overhead per job ({rows[0]['phones']} phone): {rows[0]['overhead_pct']:.1f}% (goal < 10%); "
          f"throughput vs {rows[0]['phones']} phone: {scaling}")


if __name__ == "__main__":
    main()
