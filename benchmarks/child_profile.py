"""Where a search child's time goes, phase by phase, on the demo at the search's proxy settings.

Each child is trained the way a search worker trains it (:func:`search.evaluate.train_child`'s path:
:func:`akd_tf.distill.proxy_train`), with a callback timing Keras' batches, so that the first train and
test batch (graph tracing, function instantiation and one step) separate from the steady steps:

* ``build``: clear the Keras session and build the student;
* ``setup``: teacher outputs (cache lookup), input pipelines, compile, optimizer slots;
* ``train trace``: the first train batch less one steady batch; ``train steps``: every train batch at the
  steady rate;
* ``eval trace`` / ``eval steps``: the same for the mini-val evaluation;
* ``other``: what is left of the child's wall time (epoch ends, result summary).

    .venv/bin/python benchmarks/child_profile.py [--children 6 --seed 0 --proxy-epochs 3 --proxy-train-size 1500]

The headline (the share of a child's time that does not depend on the number of examples: build, setup
and tracing) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import akd_tf.tf_env  # noqa: F401
import tf_keras as keras

from akd_tf.space import get_space
from search.config import ProxySettings, SearchConfig
from search.evaluate import child_seed, distill_settings, run_training_data

PHASES = ("build", "setup", "train trace", "train steps", "eval trace", "eval steps", "other")


class _BatchClock(keras.callbacks.Callback):
    """Wall-clock start and end of every train and test batch, and of the fit."""

    def __init__(self):
        super().__init__()
        self.train, self.test = [], []
        self.fit_begin = self.fit_end = None

    def on_train_begin(self, logs=None):
        self.fit_begin = time.perf_counter()

    def on_train_end(self, logs=None):
        self.fit_end = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.train.append([time.perf_counter(), None])

    def on_train_batch_end(self, batch, logs=None):
        self.train[-1][1] = time.perf_counter()

    def on_test_batch_begin(self, batch, logs=None):
        self.test.append([time.perf_counter(), None])

    def on_test_batch_end(self, batch, logs=None):
        self.test[-1][1] = time.perf_counter()


def _trace_and_steps(batches: list[list[float]]) -> tuple[float, float]:
    """(first batch less a steady one, every batch at the steady rate): the steady rate is the median batch."""
    durations = [end - begin for begin, end in batches if end is not None]  # Keras begins a batch past the end
    if not durations:
        return 0.0, 0.0
    steady = statistics.median(durations[1:]) if len(durations) > 1 else 0.0
    return max(durations[0] - steady, 0.0), steady * len(durations)


def profile_child(arch, config: SearchConfig, training, number: int) -> dict[str, float]:
    from akd_tf import distill as distill_module
    from akd_tf.models import build_student

    train = config.proxy.train_settings(child_seed(config, number))
    settings = distill_settings(config.proxy, config.reward_source)
    clock = _BatchClock()
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(train.seed)
    student = build_student(arch, training.input_shape, training.num_classes)
    built = time.perf_counter()
    distill_module.distill(student, None, training, settings=settings, train=train, callbacks=[clock])
    finished = time.perf_counter()
    train_trace, train_steps = _trace_and_steps(clock.train)
    eval_trace, eval_steps = _trace_and_steps(clock.test)
    phases = {"build": built - started, "setup": clock.fit_begin - built, "train trace": train_trace,
              "train steps": train_steps, "eval trace": eval_trace, "eval steps": eval_steps}
    phases["other"] = (finished - started) - sum(phases.values())
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-train-size", type=int, default=1500)
    parser.add_argument("--proxy-batch-size", type=int, default=32)
    parser.add_argument("--val-size", type=int, default=1000)
    args = parser.parse_args()
    config = SearchConfig(name="profile", controller="random", reward_source="label", target_ms=1.0,
                          trials=args.children, batch_size=args.children, seed=args.seed,
                          data={"source": "demo", "val_size": args.val_size, "channels": 3},
                          proxy=ProxySettings(epochs=args.proxy_epochs, train_size=args.proxy_train_size,
                                              batch_size=args.proxy_batch_size))
    load_started = time.perf_counter()
    training = run_training_data(config)
    print(f"data load (once per worker): {time.perf_counter() - load_started:.1f} s", flush=True)
    archs = get_space(config.space).sample_many(args.children, args.seed)
    rows = []
    for number, arch in enumerate(archs, start=1):
        phases = profile_child(arch, config, training, number)
        rows.append(phases)
        print(f"child {number}: {sum(phases.values()):5.1f} s  "
              + "  ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items()), flush=True)
    total = sum(sum(r.values()) for r in rows)
    print(f"\nmean per child over {len(rows)} children: {total / len(rows):.1f} s")
    for name in PHASES:
        seconds = sum(r[name] for r in rows)
        print(f"  {name:12s} {seconds / len(rows):6.2f} s  {seconds / total:6.1%}")
    fixed = sum(r[name] for r in rows for name in ("build", "setup", "train trace", "eval trace"))
    print(f"fixed cost per child (build, setup, tracing; independent of the number of examples): "
          f"{fixed / len(rows):.1f} s of {total / len(rows):.1f} s = {fixed / total:.0%}")


if __name__ == "__main__":
    main()
