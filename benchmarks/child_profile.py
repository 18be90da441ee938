"""Where a search child's time goes, end to end, phase by phase, on the demo at the search's proxy settings.

Each child goes through what a search does to it, one phase after another, so each phase is timed alone:

* its latency, as a search finds it: ``latency (predicted)`` from the host's latency table (the default;
  benchmarks/.cache/host.db, built by lut_build.py; left out without it), and, as ``search --measure`` does,
  ``export`` (the untrained model built, converted to ``.tflite`` and checked against Keras) and
  ``measurement`` (this host's interpreter, one thread, the whole-model protocol);
* its preparation (:func:`search.evaluate.prepare_child`, the phases it records,
  :attr:`akd_tf.distill.PreparedTraining.phases`): ``build`` the student, ``teacher outputs`` (the cache
  lookup; none with hard labels), ``pipelines`` (tf.data), ``trainer`` (built, compiled, optimizer slots),
  ``trace`` (the train and test functions) and ``warm-up`` (their first calls);
* its fit (:func:`akd_tf.distill.fit_prepared`, with a callback timing Keras' batches): ``train steps``,
  ``eval steps`` and ``fit other`` (what is left: epoch ends, the result).

In a one-worker search the preparation runs in a thread beside the previous child's fit (the run-ahead of
:class:`search.executors.SequentialExecutor`), so its wall time hides behind that fit and costs the fit only
the CPU it takes; latencies measured on the host are found for a whole step before its children train.

    .venv/bin/python benchmarks/child_profile.py [--children 6 --seed 0 --proxy-epochs 3 --proxy-train-size 1500]

The headline (the share of a child's time, with a predicted latency, that does not depend on the number of
examples: its latency, preparation, and the rest of its fit) is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import akd_tf.tf_env  # noqa: F401
import tf_keras as keras

from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.store import open_store
from search.config import ProxySettings, SearchConfig
from search.evaluate import configure_child_threads, prepare_child, run_training_data
from search.latency import LatencySource
from table_args import CACHE

PREPARATION = ("build", "teacher outputs", "pipelines", "trainer", "trace", "warm-up")
FIT = ("train steps", "eval steps", "fit other")
LATENCY = ("latency (predicted)", "export", "measurement")
PHASES = LATENCY + PREPARATION + FIT
PER_EXAMPLE = ("train steps", "eval steps")  # the phases that grow with the number of examples


class _BatchClock(keras.callbacks.Callback):
    """Wall-clock start and end of every train and test batch."""

    def __init__(self):
        super().__init__()
        self.train, self.test = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.train.append([time.perf_counter(), None])

    def on_train_batch_end(self, batch, logs=None):
        self.train[-1][1] = time.perf_counter()

    def on_test_batch_begin(self, batch, logs=None):
        self.test.append([time.perf_counter(), None])

    def on_test_batch_end(self, batch, logs=None):
        self.test[-1][1] = time.perf_counter()


def _batches_seconds(batches: list[list[float]]) -> float:
    return sum(end - begin for begin, end in batches if end is not None)  # Keras begins a batch past the end


def predicted_latency_seconds(arch, source) -> float | None:
    """Seconds to find ``arch``'s latency as a search does by default (``source``: a
    :class:`search.latency.LatencySource` on the host's table), None without a table or a price."""
    if source is None:
        return None
    started = time.perf_counter()
    [found] = source.latencies([arch])
    seconds = time.perf_counter() - started
    return None if found.error is not None else seconds


def measured_latency_seconds(arch, target: ModelTarget, store) -> tuple[float, float]:
    """(export, measurement) seconds of ``arch`` as ``search --measure`` finds its latency on this host."""
    from latency_db.measure import export_untrained, measure_tflite

    with tempfile.TemporaryDirectory(prefix="akd-tf-profile-") as tmp:
        started = time.perf_counter()
        exported = export_untrained(arch, target, Path(tmp) / "model.tflite", 0)
        converted = time.perf_counter()
        measure_tflite(store, "local", arch, target, exported.path, exported.sha256)
        return converted - started, time.perf_counter() - converted


def profile_child(arch, config: SearchConfig, number: int, target: ModelTarget, predicted, store) -> dict:
    """The phases of one child (``predicted``: the latency source on the host table, or None; ``store``: where
    its measurement goes)."""
    from akd_tf.distill import fit_prepared

    phases = {"latency (predicted)": predicted_latency_seconds(arch, predicted)}
    phases["export"], phases["measurement"] = measured_latency_seconds(arch, target, store)
    job = {"config": config.to_dict(), "arch": arch.to_string(), "number": number, "threads": None,
           "cache_dir": None}
    prepared = prepare_child(job)
    phases.update(prepared.phases)
    clock = _BatchClock()
    started = time.perf_counter()
    fit_prepared(prepared, callbacks=[clock])
    fit_seconds = time.perf_counter() - started
    phases["train steps"], phases["eval steps"] = _batches_seconds(clock.train), _batches_seconds(clock.test)
    phases["fit other"] = fit_seconds - phases["train steps"] - phases["eval steps"]
    missing = [name for name in PHASES if name not in phases]
    if missing:
        raise RuntimeError(f"no time recorded for {', '.join(missing)}: the preparation's phases changed")
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-train-size", type=int, default=1500)
    parser.add_argument("--proxy-batch-size", type=int, default=32)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--lut-db", type=Path, default=CACHE / "host.db",
                        help="database holding the host's latency table (default benchmarks/.cache/host.db)")
    args = parser.parse_args()
    configure_child_threads(None)  # one thread per op, as every child trains
    config = SearchConfig(name="profile", controller="random", reward_source="label", target_ms=1.0,
                          trials=args.children, batch_size=args.children, seed=args.seed,
                          data={"source": "demo", "val_size": args.val_size, "channels": 3},
                          proxy=ProxySettings(epochs=args.proxy_epochs, train_size=args.proxy_train_size,
                                              batch_size=args.proxy_batch_size))
    load_started = time.perf_counter()
    training = run_training_data(config)
    print(f"data load (once per worker): {time.perf_counter() - load_started:.1f} s", flush=True)
    target = ModelTarget(training.resolution, training.num_classes, training.channels, config.quantization)
    archs = get_space(config.space).sample_many(args.children, args.seed)
    rows = []
    lut_store = open_store(f"sqlite:///{args.lut_db}") if args.lut_db.is_file() else None
    predicted = None if lut_store is None else LatencySource(lut_store, "local", target, measure=False)
    with tempfile.TemporaryDirectory(prefix="akd-tf-profile-db-") as tmp:
        store = open_store(f"sqlite:///{tmp}/measured.db")
        for number, arch in enumerate(archs, start=1):
            phases = profile_child(arch, config, number, target, predicted, store)
            rows.append(phases)
            print(f"child {number}: " + "  ".join(f"{name} {'-' if seconds is None else f'{seconds:.2f}'}"
                                                  for name, seconds in phases.items()), flush=True)
        store.close()
    if lut_store is not None:
        lut_store.close()

    def mean(name: str) -> float | None:
        values = [row[name] for row in rows if row[name] is not None]
        return statistics.fmean(values) if values else None

    means = {name: mean(name) for name in PHASES}
    default = ("latency (predicted)",) + PREPARATION + FIT  # a search's path unless it measures
    total = sum(means[name] or 0.0 for name in default)
    print(f"\nmean per child over {len(rows)} children, each phase alone: {total:.1f} s with a predicted latency")
    for group, names in (("latency", LATENCY), ("preparation", PREPARATION), ("fit", FIT)):
        print(f"{group}:")
        for name in names:
            value = means[name]
            if value is None:
                shown = "    n/a (no latency table)"
            elif name in default:
                shown = f"{value:8.3f} s  {value / total:6.1%}"
            else:
                shown = f"{value:8.3f} s  (--measure only)"
            print(f"  {name:20s} {shown}")
    measured = means["export"] + means["measurement"]
    print(f"with --measure instead of a predicted latency: {measured:.1f} s more per child (export "
          f"{means['export']:.1f} s, measurement {means['measurement']:.1f} s), found before the step trains")
    fixed = sum(means[name] or 0.0 for name in default if name not in PER_EXAMPLE)
    print(f"fixed cost per child (predicted latency, preparation, fit other; independent of the number of "
          f"examples): {fixed:.1f} s of {total:.1f} s = {fixed / total:.0%}")


if __name__ == "__main__":
    main()
