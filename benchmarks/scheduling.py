"""How the search schedules children, measured against switching it off in the same process.

* ``run-ahead`` (1 worker): the search process prepares the next child (builds its student, traces its
  functions) in a thread while one trains, against preparing each child just before it trains.
* ``warm-up`` (1 worker, running ahead): the thread that prepares the next child also runs its train and test
  functions once and undoes those steps (:func:`akd_tf.distill.warm_up`), so TensorFlow instantiates them
  there, against leaving that to the child's first step in the thread that trains.
* ``switch-interval`` (1 worker, running ahead): while a child trains beside the next one's preparation,
  Python's GIL switch interval is 0.5 ms (:data:`search.executors.RUN_AHEAD_SWITCH_INTERVAL_S`), against
  Python's default 5 ms.
* ``longest-first`` (2 worker processes): the children with the most multiply-adds start first, against
  starting them by number.

Each round runs the same search (the demo at search_throughput.py's settings, random controller, the same
children) off and then on, in fresh databases; rounds alternate to spread the host's drift over both.

    .venv/bin/python benchmarks/scheduling.py run-ahead [--rounds 2 --trials 8 ...]
    .venv/bin/python benchmarks/scheduling.py warm-up [--rounds 2 --trials 8 ...]
    .venv/bin/python benchmarks/scheduling.py switch-interval [--rounds 2 --trials 8 ...]
    .venv/bin/python benchmarks/scheduling.py longest-first [--rounds 2 --trials 8 ...]

The headline (children per hour off and on, summed over the rounds, and their ratio) is printed last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import search.evaluate
import search.executors
import search.loop
from search_throughput import add_proxy_arguments, one_run


def by_number(trials, workers):
    return sorted(trials, key=lambda t: t.number)


def prepare_cold(job: dict):
    """:func:`search.evaluate.prepare_child` without its warm-up: built and traced only."""
    return search.evaluate.prepare_child(job, warm=False)


def switch(what: str, on: bool) -> None:
    if what == "warm-up":
        search.evaluate.train_child.prepare = search.evaluate.prepare_child if on else prepare_cold
    elif what == "switch-interval":
        search.executors.RUN_AHEAD_SWITCH_INTERVAL_S = SWITCH_INTERVAL_S if on else PYTHON_DEFAULT_SWITCH_INTERVAL_S
    elif what == "run-ahead":
        if on:
            search.evaluate.train_child.prepare = search.evaluate.prepare_child
        elif hasattr(search.evaluate.train_child, "prepare"):
            del search.evaluate.train_child.prepare
    else:
        search.loop.start_order = START_ORDER if on else by_number


START_ORDER = search.loop.start_order
SWITCH_INTERVAL_S = search.executors.RUN_AHEAD_SWITCH_INTERVAL_S
PYTHON_DEFAULT_SWITCH_INTERVAL_S = sys.getswitchinterval()  # this interpreter's own (Python's default: 5 ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["run-ahead", "warm-up", "switch-interval", "longest-first"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None, help="children per step (default: --trials)")
    add_proxy_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    workers = 2 if args.what == "longest-first" else 1
    totals = {False: [0, 0.0], True: [0, 0.0]}
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.rounds):
            for on in (False, True):
                switch(args.what, on)
                folder = Path(tmp) / f"{round_number}-{'on' if on else 'off'}"
                folder.mkdir()
                seconds, summary = one_run(args, workers, folder, batch_size=args.batch_size)
                done = summary["trials"]["done"]
                totals[on][0] += done
                totals[on][1] += seconds
                print(f"round {round_number + 1}, {args.what} {'on' if on else 'off'}: {done} children in "
                      f"{seconds:.1f} s = {done / seconds * 3600:.0f} children/hour", flush=True)
    switch(args.what, True)
    off, on = (totals[key][0] / totals[key][1] * 3600 for key in (False, True))
    print(f"{args.what}, {workers} worker{'s' if workers > 1 else ''}, {args.rounds} rounds: off {off:.0f} "
          f"children/hour, on {on:.0f} ({on / off:.2f}x)")


if __name__ == "__main__":
    main()
