"""What ``--early-stop`` saves and costs on the demo: children per hour and best reward, with and without it.

For each of --seeds seeds, the same random search (the same children: random search does not learn) runs
twice in fresh databases, 1 worker, --trials children in steps of --batch-size (early stopping needs 4
children trained before a step to compare against), at the throughput benchmark's proxy settings (3 epochs
on 1,500 demo images at 32x32x3, hard labels, latency predicted from benchmarks/.cache/host.db): once
without early stopping, once with it.

    .venv/bin/python benchmarks/early_stop.py [--seeds 3 --trials 16 --batch-size 4]

The headline (children per hour and mean best reward with early stopping, as ratios to the runs without)
is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from search_throughput import add_proxy_arguments, one_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    add_proxy_arguments(parser)
    args = parser.parse_args()
    args.seed = 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for early_stop in (False, True):
                seconds, summary = one_run(args, 1, Path(tmp), seed=seed, batch_size=args.batch_size,
                                           early_stop=early_stop)
                rows.append({"seed": seed, "early_stop": early_stop, "seconds": seconds,
                             "per_hour": summary["trials"]["done"] / seconds * 3600,
                             "best": summary["best"]["reward"], "best_accuracy": summary["best"]["accuracy"]})
                print(f"seed {seed} {'with' if early_stop else 'without'} early stopping: "
                      f"{summary['trials']['done']} children ({summary['stopped_early']} stopped early) in "
                      f"{seconds:.0f} s = {rows[-1]['per_hour']:.0f}/hour, "
                      f"best reward {rows[-1]['best']:.4f} (top-1 {rows[-1]['best_accuracy']:.2%})", flush=True)
    without = [r for r in rows if not r["early_stop"]]
    with_es = [r for r in rows if r["early_stop"]]
    rate_without = statistics.mean(r["per_hour"] for r in without)
    rate_with = statistics.mean(r["per_hour"] for r in with_es)
    best_without = statistics.mean(r["best"] for r in without)
    best_with = statistics.mean(r["best"] for r in with_es)
    print(f"over {args.seeds} seeds: without {rate_without:.0f} children/hour, best reward {best_without:.4f}; "
          f"with early stopping {rate_with:.0f} children/hour ({rate_with / rate_without:.2f}x), "
          f"best reward {best_with:.4f} ({best_with / best_without:.3f}x)")


if __name__ == "__main__":
    main()
