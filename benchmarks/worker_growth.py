"""What a search worker keeps from each child it trains: live Python objects, resident memory and the time of
a full garbage collection, after each of N children trained one after another in this process.

A worker trains child after child (:func:`search.evaluate.train_child`); anything a child leaves alive makes
the next collections slower and the worker bigger for the rest of the search. Children are small (1 proxy
epoch on 300 demo images, labels only) so that the figures are about what is kept, not about training.

    .venv/bin/python benchmarks/worker_growth.py [--children 10 --seed 0]

The headline (objects, memory and collection time added per child, from the second child to the last;
the first child also pays one-time imports and caches) is printed last.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import akd_tf.tf_env  # noqa: F401

from akd_tf.space import get_space
from search.config import ProxySettings, SearchConfig
from search.evaluate import train_child


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2 ** 20


def _collected() -> tuple[int, float]:
    """(live objects the collector tracks, seconds of one full collection)."""
    start = time.perf_counter()
    gc.collect()
    return len(gc.get_objects()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = SearchConfig(name="growth", controller="random", reward_source="label", target_ms=1.0,
                          trials=args.children, seed=args.seed,
                          data={"source": "demo", "val_size": 1000, "channels": 3},
                          proxy=ProxySettings(epochs=1, train_size=300, batch_size=32))
    rows = []
    for number, arch in enumerate(get_space().sample_many(args.children, args.seed), 1):
        train_child({"config": config.to_dict(), "arch": arch.to_string(), "number": number, "threads": None,
                     "cache_dir": None})
        objects, gc_s = _collected()
        rows.append((objects, _rss_mb(), gc_s))
        print(f"after child {number:2d}: {objects:8,d} objects  {rows[-1][1]:7.1f} MB resident  "
              f"full collection {gc_s:.3f} s", flush=True)
    spans = len(rows) - 1
    if spans < 1:
        return
    (objects0, rss0, gc0), (objects1, rss1, gc1) = rows[0], rows[-1]
    print(f"per child, children 2-{len(rows)}: {(objects1 - objects0) / spans:+,.0f} objects, "
          f"{(rss1 - rss0) / spans:+.1f} MB resident, {(gc1 - gc0) / spans * 1000:+.1f} ms of full collection")


if __name__ == "__main__":
    main()
