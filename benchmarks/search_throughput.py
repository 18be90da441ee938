"""Search throughput on the demo: children per hour with 1 worker (the baseline) and with N worker processes.

Both runs search the same space with the same seed and random controller (so the same children), hard
labels, latency predicted from the host table in benchmarks/.cache/host.db (built by lut_build.py; that
table is for 3 input channels, so the demo's images are fed as 32x32x3), in a fresh SQLite database each.
Each child trains for --proxy-epochs on --proxy-train-size mini-train images and is scored on --val-size.

    .venv/bin/python benchmarks/search_throughput.py [--trials 8 --workers 2 --cores-per-worker K --controller ppo ...]

Each run also reports the cores it kept busy on average (CPU time of the search process and its workers
over the run's wall time), the CPU seconds it spent per child, and the share of its workers' time spent
training children (the rest: starting workers, waiting for work, the run's last children). Without
--cores-per-worker one worker trains in the search process with its cores running a child's ops side by
side while the next child is prepared, so on a machine with few cores it already keeps more than one
busy; N workers then gain what is left of the cores, less what running several TensorFlow processes side
by side costs (the CPU seconds per child show that cost). With --cores-per-worker K both runs pin each
worker process to K cores of its own (1 worker: K cores; N workers: N x K), which measures how the search
scales when each worker has its cores to itself.

The headline (children per hour with N workers, and the ratio to 1 worker) is printed last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.executors import make_executor
from search.loop import run_search
from table_args import CACHE


def _copy_table(source_db: Path, target_url: str) -> None:
    """A fresh database holding only the host's latency table (so searches start empty)."""
    from latency_db.exchange import export_table, import_table

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lut.json"
        path.write_text(export_table(open_store(f"sqlite:///{source_db}"), "local", "json"))
        import_table(open_store(target_url), path, "local", "json")


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (pool workers once shut down)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def one_run(args, workers: int, tmp: Path, *, seed: int | None = None, batch_size: int | None = None,
            early_stop: str | None = None) -> tuple[float, dict]:
    """Seconds and summary of one search in a fresh database under ``tmp`` (``args``: the proxy settings,
    and ``cores_per_worker`` if it has one; ``early_stop``: the rule, or None); the summary gains
    ``cores_busy``, the cores the run kept busy on average, ``cpu_s_per_child``, its CPU seconds per finished
    child, ``stopped_early``, the children early stopping stopped, and ``workers_training``, the share of the
    workers' time (workers x seconds) spent training children."""
    seed = args.seed if seed is None else seed
    name = f"throughput-{workers}-s{seed}{f'-{early_stop}' if early_stop else ''}"
    url = f"sqlite:///{tmp / f'{name}.db'}"
    _copy_table(CACHE / "host.db", url)
    config = SearchConfig(name=name, controller=getattr(args, "controller", "random"), reward_source="label",
                          target_ms=1.0, trials=args.trials, batch_size=batch_size or args.trials, seed=seed,
                          early_stop=early_stop, data={"source": "demo", "val_size": args.val_size, "channels": 3},
                          proxy=ProxySettings(epochs=args.proxy_epochs, train_size=args.proxy_train_size,
                                              batch_size=args.proxy_batch_size))
    executor = make_executor("local", workers, cores_per_worker=getattr(args, "cores_per_worker", None))
    start, cpu_start = time.perf_counter(), cpu_seconds()
    try:
        summary = run_search(open_store(url), config, executor=executor,
                             on_event=lambda e: print(f"  {name}: {e.finished}/{e.budget} "
                                                      f"({e.elapsed_s:.0f} s)", flush=True))
    finally:
        executor.close()  # waits for the workers, so their CPU time counts
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    summary["cores_busy"] = cpu / seconds
    summary["cpu_s_per_child"] = cpu / max(summary["trials"]["done"], 1)
    store = open_store(url)
    trials = runs.all_trials(store, runs.get_run(store, name).id)
    summary["stopped_early"] = sum(1 for t in trials if (t.train or {}).get("stopped_at_epoch"))
    # What the workers spent on children (from each child's start on its worker to its result) over what
    # they had: the rest went to starting workers, waiting for work and the run's end.
    summary["workers_training"] = sum(t.train_seconds or 0.0 for t in trials) / (workers * seconds)
    return seconds, summary


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's proxy task at today's settings: 3 epochs on 1,500 images (batch 32), scored on 1,000."""
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-train-size", type=int, default=1500)
    parser.add_argument("--proxy-batch-size", type=int, default=32)
    parser.add_argument("--val-size", type=int, default=1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the second run (at least 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="children per step (default: --trials)")
    parser.add_argument("--controller", default="random", help="the search's controller (random: the same children "
                        "in both runs; another one proposes by what it learnt, so its runs may differ)")
    parser.add_argument("--cores-per-worker", type=int, default=None,
                        help="pin each worker process to this many cores of its own, in both runs (default: "
                             "not pinned; 1 worker trains in this process)")
    add_proxy_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.workers < 2:
        parser.error(f"--workers must be at least 2 (the baseline run has 1 worker), got {args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        base_s, base = one_run(args, 1, Path(tmp), batch_size=args.batch_size)
        many_s, many = one_run(args, args.workers, Path(tmp), batch_size=args.batch_size)
    base_done, many_done = base["trials"]["done"], many["trials"]["done"]
    base_rate, many_rate = base_done / base_s * 3600, many_done / many_s * 3600
    cores = len(os.sched_getaffinity(0))
    pinned = "" if args.cores_per_worker is None else f", {args.cores_per_worker} core(s) of its own each"
    print(f"cores this process may run on: {cores}")
    for count, summary in ((1, base), (args.workers, many)):
        print(f"{count} worker{'s' if count > 1 else ''}{pinned}: kept {summary['cores_busy']:.2f} cores busy "
              f"on average, {summary['cpu_s_per_child']:.1f} CPU seconds per child, workers training "
              f"{summary['workers_training']:.0%} of the time")
    print(f"1 worker{pinned}: {base_done} children in {base_s:.0f} s = {base_rate:.0f} children/hour")
    print(f"{args.workers} workers{pinned}: {many_done} children in {many_s:.0f} s = {many_rate:.0f} children/hour "
          f"({many_rate / base_rate:.2f}x 1 worker)")


if __name__ == "__main__":
    main()
