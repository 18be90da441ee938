"""What ``--early-stop`` saves and costs on the demo: children per hour and best reward, with each rule and without.

For each of --seeds seeds, the same random search (the same children: random search does not learn) runs once
without early stopping and once with each of --rules, in fresh databases, --workers workers (default 1: the
search process, preparing the next child while one trains), --trials children in
steps of --batch-size (early stopping needs 4 children trained before a step to compare against), at the
throughput benchmark's proxy settings (3 epochs on 1,500 demo images at 32x32x3, hard labels, latency
predicted from benchmarks/.cache/host.db). Over 3 epochs the median rule validates after epochs 1, 2 and 3
and may stop a child after 1 or 2; successive halving validates after epochs 1 and 3 and may stop it after 1.

    .venv/bin/python benchmarks/early_stop.py [--seeds 3 --trials 16 --batch-size 4 --rules median,halving
                                               --workers 1]

The headline (children per hour and mean best reward with each rule, as ratios to the runs without) is
printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from search.early_stop import STOP_RULES
from search_throughput import add_proxy_arguments, one_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rules", default=",".join(STOP_RULES),
                        help=f"comma-separated rules to compare with no early stopping ({', '.join(STOP_RULES)})")
    add_proxy_arguments(parser)
    args = parser.parse_args()
    rules = [rule for rule in args.rules.split(",") if rule]
    unknown = [rule for rule in rules if rule not in STOP_RULES]
    if unknown or not rules:
        parser.error(f"--rules: expected some of {', '.join(STOP_RULES)}, got {args.rules!r}")
    args.seed = 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for rule in (None, *rules):
                seconds, summary = one_run(args, args.workers, Path(tmp), seed=seed, batch_size=args.batch_size,
                                           early_stop=rule)
                rows.append({"seed": seed, "rule": rule, "seconds": seconds,
                             "per_hour": summary["trials"]["done"] / seconds * 3600,
                             "best": summary["best"]["reward"], "best_accuracy": summary["best"]["accuracy"]})
                print(f"seed {seed} {rule or 'without early stopping'}: "
                      f"{summary['trials']['done']} children ({summary['stopped_early']} stopped early) in "
                      f"{seconds:.0f} s = {rows[-1]['per_hour']:.0f}/hour, "
                      f"best reward {rows[-1]['best']:.4f} (top-1 {rows[-1]['best_accuracy']:.2%})", flush=True)

    def mean(rule, key):
        return statistics.mean(r[key] for r in rows if r["rule"] == rule)

    rate_without, best_without = mean(None, "per_hour"), mean(None, "best")
    parts = [f"{rule} {mean(rule, 'per_hour'):.0f}/hour ({mean(rule, 'per_hour') / rate_without:.2f}x), best "
             f"{mean(rule, 'best'):.4f} ({mean(rule, 'best') / best_without:.3f}x)" for rule in rules]
    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    print(f"over {args.seeds} seeds, {workers}: without early stopping {rate_without:.0f} children/hour, best reward "
          f"{best_without:.4f}; " + "; ".join(parts))


if __name__ == "__main__":
    main()
