"""A search that measures its children on a phone: children per hour when each child trains as soon as its own
measurement is back, against the search measuring its whole step before any child trains (the code before).

One emulated Pixel 4 runs in a process of its own (an ADB daemon on loopback whose benchmark_model really runs
the model on this host; temperatures pinned at 35 C so no cool-down waits), served by one farm worker in another
process, as a phone on a farm host would be. Each run is a `--measure` search in a fresh SQLite database with
the phone registered: the random controller with the same seed (so the same children), hard labels, the demo at
32x32x3, --proxy-epochs on --proxy-train-size images. The two ways alternate for --rounds rounds in this
process, each round in the other order than the one before (ABBA); "whole step first" is the same code with
each step's latencies waited for before any child starts.

On this host the emulated phone's benchmark runs on the cores that train, so measuring beside training slows
both (and the measured latencies: their mean is printed); a real phone measures on its own cores.

    .venv/bin/python benchmarks/measured_search.py [--trials 8 --batch-size 4 --rounds 2]

The headline (children per hour both ways and their ratio) is printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import select

from farm_throughput import tool_seconds
from latency_db.schema import Job
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.latency import LatencySource, Pricing
from search.loop import run_search
from search_throughput import add_proxy_arguments

WAYS = ("whole step first", "as measured")


def _serve_phone(state_dir: str, ports, stop) -> None:
    from devicefarm.emulator import EmulatedPhone, Faults

    with EmulatedPhone("pixel4", state_dir=state_dir, faults=Faults(temperature_c=35.0)).start() as phone:
        ports.put(phone.port)
        stop.wait()


def _serve_farm(url: str, stop) -> None:
    """A farm worker serving ``px`` in the database at ``url`` until ``stop`` is set."""
    from devicefarm.worker import FarmWorker, WorkerOptions

    worker = FarmWorker(open_store(url), ["px"], worker_id="bench", options=WorkerOptions(poll_s=0.05))
    threading.Thread(target=lambda: (stop.wait(), worker.stop.set()), daemon=True).start()
    worker.run()


def whole_step_first(real_start):
    """``LatencySource.start`` that returns only once every latency of the step is known (the code before)."""
    def start(self, archs):
        found = real_start(self, archs).wait_all()
        return Pricing(list(range(len(archs))), dict(enumerate(found)))  # each index its own key: as it is
    return start


def one_run(args, way: str, round_: int, workdir: Path, address: str, binary: Path, context) -> dict:
    from devicefarm.phones import register_phone

    name = f"measured-{way.replace(' ', '-')}-{round_}"
    url = f"sqlite:///{workdir / f'{name}.db'}"
    register_phone(open_store(url), address, name="px", benchmark_binary=binary)
    config = SearchConfig(name=name, controller="random", reward_source="label", target_ms=1.0, trials=args.trials,
                          batch_size=args.batch_size, seed=args.seed, device="px", measure=True,
                          data={"source": "demo", "val_size": args.val_size, "channels": 3},
                          proxy=ProxySettings(epochs=args.proxy_epochs, train_size=args.proxy_train_size,
                                              batch_size=args.proxy_batch_size))
    stop = context.Event()
    farm = context.Process(target=_serve_farm, args=(url, stop), daemon=True)
    farm.start()
    real_start = LatencySource.start
    if way == "whole step first":
        LatencySource.start = whole_step_first(real_start)
    start = time.perf_counter()
    try:
        summary = run_search(open_store(url), config, wait_timeout_s=600,
                             on_event=lambda e: print(f"  {name}: {e.finished}/{e.budget} ({e.elapsed_s:.0f} s)",
                                                      flush=True))
    finally:
        LatencySource.start = real_start
        stop.set()
        farm.join(timeout=30)
    seconds = time.perf_counter() - start
    store = open_store(url)
    trials = runs.all_trials(store, runs.get_run(store, name).id)
    with store.session() as session:  # benchmark_model's own run time on the phone, per job
        phone_s = [tool_seconds({**job.result, "raw_output": job.raw_output})
                   for job in session.scalars(select(Job).where(Job.state == "done"))]
    return {"way": way, "seconds": seconds, "done": summary["trials"]["done"],
            "per_hour": summary["trials"]["done"] / seconds * 3600,
            "latency_ms": statistics.mean(t.latency_ms for t in trials if t.latency_ms is not None),
            "pricing_s": statistics.mean(t.latency_seconds or 0.0 for t in trials),
            "phone_s": statistics.mean(phone_s), "archs": [t.arch for t in trials]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the two ways, alternated")
    add_proxy_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("AKD_TF_ADB_KEY", str(Path(tempfile.gettempdir()) / "akd-tf-bench-keys" / "adbkey"))
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory(prefix="akd-tf-measured-") as tmp:
        workdir = Path(tmp)
        binary = workdir / "benchmark_model"
        binary.write_bytes(b"the emulated phone runs its own benchmark_model\n")
        stop, ports = context.Event(), context.Queue()
        phone = context.Process(target=_serve_phone, args=(str(workdir / "phone"), ports, stop), daemon=True)
        phone.start()
        address = f"127.0.0.1:{ports.get(timeout=120)}"
        try:
            for round_ in range(args.rounds):
                for way in (WAYS if round_ % 2 == 0 else WAYS[::-1]):  # ABBA: neither way always runs first
                    row = one_run(args, way, round_, workdir, address, binary, context)
                    rows.append(row)
                    print(f"round {round_}, {way}: {row['done']} children in {row['seconds']:.0f} s = "
                          f"{row['per_hour']:.0f} children/hour; the search spent {row['pricing_s']:.1f} s per "
                          f"child on pricing with nothing training (exports, waits), the phone's benchmark_model "
                          f"{row['phone_s']:.1f} s per measurement; mean measured latency "
                          f"{row['latency_ms']:.3f} ms", flush=True)
        finally:
            stop.set()
            phone.join(timeout=30)
    if len({tuple(r["archs"]) for r in rows}) != 1:
        print("warning: the runs searched different children")
    rates = {way: [r["per_hour"] for r in rows if r["way"] == way] for way in WAYS}
    base, new = (statistics.mean(rates[way]) for way in WAYS)
    print(f"host cores: {len(os.sched_getaffinity(0))}; {args.trials} children in steps of {args.batch_size}, "
          f"{args.rounds} round(s)")
    print(f"children/hour: whole step first {', '.join(f'{r:.0f}' for r in rates[WAYS[0]])} (mean {base:.0f}); "
          f"as measured {', '.join(f'{r:.0f}' for r in rates[WAYS[1]])} (mean {new:.0f}): {new / base:.2f}x")


if __name__ == "__main__":
    main()
