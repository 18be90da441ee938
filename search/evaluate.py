"""Training a search's children: the proxy task, run wherever an executor puts it.

:func:`train_child` is a top-level function of plain data in, plain data out, so it can run in this
process, a local worker process or a Ray worker. Each process loads the run's data and teacher once
(:func:`run_training_data`, memoized per process); the teacher's outputs come from the file cache
that the search fills before the first child (:func:`akd_tf.teacher_cache.teacher_outputs`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import time

from akd_tf import data
from akd_tf.data_config import load_configured
from akd_tf.space import get_space
from akd_tf.train_settings import DistillSettings
from search.config import ProxySettings, SearchConfig
from search.early_stop import curve_of, get_rule, stopping_callback


def run_training_data(config: SearchConfig) -> data.TrainingData:
    """Mini-train / mini-val of the run; mini-train cut to ``config.proxy.train_size`` (seeded, stratified,
    named ``...[mini_train][proxy-N]``)."""
    return _training_data(json.dumps(config.data, sort_keys=True), _min_resolution(config), config.proxy.train_size)


def full_training_data(config: SearchConfig) -> data.TrainingData:
    """Mini-train / mini-val of the run without the proxy's cut: what the chosen student is trained on."""
    return _training_data(json.dumps(config.data, sort_keys=True), _min_resolution(config), None)


def _min_resolution(config: SearchConfig) -> int:
    """The least input side the run's students take: the space's, or a teacher's for a subgraph run."""
    if config.strategy == "subgraph":
        from akd_tf.teachers import MIN_TEACHER_SIDE

        return MIN_TEACHER_SIDE
    return get_space(config.space).min_resolution


@functools.lru_cache(maxsize=2)
def _training_data(data_json: str, min_resolution: int, train_size: int | None) -> data.TrainingData:
    options = json.loads(data_json)
    training = load_configured(options, min_resolution)
    if train_size is not None and train_size < training.mini_train.num_examples:
        _, subset = data.split_train_val(training.mini_train, val_size=train_size,
                                         seed=options.get("split_seed", 0))
        # Named for what it is (demo@train[mini_train][proxy-1500]); its fingerprint stays the split's, which
        # teacher-output caches and the data fingerprint of runs stored before it had this name key on.
        subset = dataclasses.replace(subset, name=f"{training.mini_train.name}[proxy-{train_size}]")
        training = data.TrainingData(subset, training.mini_val, training.resolution, training.channels)
    return training


@functools.lru_cache(maxsize=2)
def load_teachers(paths: tuple[str, ...]):
    """The teacher (an ensemble for several paths), loaded once per process."""
    from akd_tf.teachers import load_teacher

    return load_teacher(list(paths))


def distill_settings(proxy: ProxySettings, source: str) -> DistillSettings:
    """KD against the teacher (``"kd"``, AKD) or hard labels (``"label"``, NAS): all that differs between the two."""
    if source == "label":
        return DistillSettings.hard_label()
    return DistillSettings(alpha=proxy.alpha, temperature=proxy.temperature)


def teacher_for(config: SearchConfig):
    """The run's teacher when children are distilled, else None (a NAS run may name one for later exports)."""
    return load_teachers(config.teachers) if config.reward_source == "kd" else None


def child_seed(config: SearchConfig, number: int) -> int:
    """Each child's weights, shuffling and dropout seed: fixed by the run's seed and the trial number."""
    return (config.seed * 1_000_003 + number) % (2 ** 31)


CHILD_OP_THREADS = 1  # threads inside one op: 1 wherever a child trains, so its result never depends on the layout


@functools.lru_cache(maxsize=1)
def configure_child_threads(threads: int | None) -> bool:
    """Set how this process's TensorFlow runs: one thread inside each op (intra-op), ``threads`` ops side by
    side (inter-op; None: every core this process may run on).

    A child's result then depends only on its job, not on how many workers, cores or threads train it: a
    kernel split over several threads sums in another order (the same demo child scored 0.402 top-1 with one
    thread per op and 0.465 with two; tests/test_child_threads.py). A search's throughput stayed within the
    host's noise (docs/performance.md). Only possible before the process's first TensorFlow op: returns
    False (and changes nothing) when TensorFlow already runs with other settings.
    """
    import tensorflow as tf

    side_by_side = threads or len(os.sched_getaffinity(0))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(CHILD_OP_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(side_by_side)
    except RuntimeError:  # "... cannot be modified after initialization"
        return False
    return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def train_child(job: dict, prepared=None, when_prepared=None) -> dict:
    """Proxy-train one child and score it on mini-val.

    ``job`` is ``{"config": SearchConfig.to_dict(), "arch": str, "number": int, "threads": int | None (ops side
    by side: :func:`configure_child_threads`), "cache_dir": str | None, "early_stop": {epoch: top-1} (with
    early stopping: :func:`search.early_stop.stop_thresholds`)}``. Returns ``{"status": "done", "accuracy",
    "train", "history", "train_seconds", "worker"}`` (``history``: the Keras per-epoch history, for the
    TensorBoard log; with early stopping each ``val_`` list has one entry per epoch run, ``None`` where not
    validated), or ``{"status": "failed", "kind", "error", "train_seconds", "worker"}`` when its training
    raised (``kind`` and ``error``: :func:`search.failures.training_failure`; a NaN loss is the architecture's
    fault, anything else is retried); data or teacher problems raise.

    ``prepared``: a future of :func:`prepare_child` for ``job``, run ahead (in another thread) while the child
    before trained; its errors are the training's. ``when_prepared``: called once the child is prepared and
    its steps are about to start, when a next child's preparation may begin. ``train_seconds`` counts what the
    child took of its worker from then on, its preparation included unless it was ready before.
    """
    inputs = _child_inputs(job)  # data, teacher or arch problems raise, here
    config = inputs[0]
    import tensorflow as tf

    from akd_tf.distill import TrainingDiverged, fit_prepared
    from search.failures import training_failure

    from search.pause import pause_callback

    callbacks = [pause_callback()]  # a Ctrl-C that library code swallowed still stops this child
    if config.early_stop:  # stopped under the thresholds the search sent
        callbacks.append(stopping_callback(job.get("early_stop") or {}))
    start = time.perf_counter()
    try:
        ready = _prepare(job, inputs) if prepared is None else prepared.result()
        if when_prepared is not None:
            when_prepared()
        result = fit_prepared(ready, callbacks=callbacks)
    except (TrainingDiverged, tf.errors.OpError, ValueError, ArithmeticError, MemoryError) as exc:
        failure = training_failure(exc)
        return {"status": "failed", "kind": failure.kind, "error": failure.reason,
                "train_seconds": time.perf_counter() - start, "worker": worker_name()}
    summary = {key: value for key, value in result.to_dict().items() if key not in ("history", "settings")}
    history = result.history
    if config.early_stop:  # validated where the rule may stop it: each validation placed after its epoch
        epochs_run = len(history.get("loss", []))
        history = {name: curve_of(values, ready.train.validated_epochs, epochs_run) if name.startswith("val_")
                   else values for name, values in history.items()}
        summary["val_top1"] = history.get("val_top1", [])
        if epochs_run < ready.train.epochs:
            summary["stopped_at_epoch"] = epochs_run
    return {"status": "done", "accuracy": result.top1, "train": summary, "history": history,
            "train_seconds": time.perf_counter() - start, "worker": worker_name()}


def prepare_child(job: dict, warm: bool = True):
    """Everything of :func:`train_child` (``job`` as there) before its first step
    (:func:`akd_tf.distill.prepare_proxy`): its student built, its train and test functions traced and, if
    ``warm``, instantiated (:func:`akd_tf.distill.warm_up`); safe to run in another thread while a child
    trains."""
    from akd_tf.distill import warm_up

    prepared = _prepare(job, _child_inputs(job))
    return warm_up(prepared) if warm else prepared


def _prepare(job: dict, inputs: tuple):
    from akd_tf.distill import prepare_proxy

    config, training, teacher, arch, train = inputs
    return prepare_proxy(arch, teacher, training, settings=distill_settings(config.proxy, config.reward_source),
                         train=train, cache_dir=job.get("cache_dir"), trace=True)


def _child_inputs(job: dict):
    """``(config, training data, teacher, arch, train settings)`` of a child's ``job`` (data and teacher memoized
    per process), the process's threads set first (:func:`configure_child_threads`; a search that trains its
    children in its own process has set them before anything else)."""
    configure_child_threads(job.get("threads"))
    config = SearchConfig.from_dict(job["config"])
    training = run_training_data(config)
    teacher = teacher_for(config)
    arch = get_space(config.space).parse(job["arch"])
    train = config.proxy.train_settings(child_seed(config, job["number"]))
    if config.early_stop:  # validated where the rule may stop it, and after the last epoch
        train = dataclasses.replace(train, validate_every_epoch=False,
                                    validate_after=tuple(get_rule(config.early_stop).stop_epochs(train.epochs)))
    return config, training, teacher, arch, train


train_child.prepare = prepare_child  # what an executor that runs children one after another may run ahead
