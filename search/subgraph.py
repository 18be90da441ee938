"""The subgraph strategy: carve the student out of the teacher, one penalty strength (lambda) per trial.

A run (``akd-tf search --strategy subgraph``) takes one teacher and a latency target on a device:

1. It measures the teacher itself and the smallest network the teacher can be carved into (every
   residual branch removed, one channel per group). A target the teacher already meets, or one below
   that smallest network, is an error before anything trains.
2. With the ``latency`` cost it measures each weighted layer of the teacher alone (micro-models, stored
   in the latency database as ``teacher-layer`` models) to price each gate (:mod:`akd_tf.unit_costs`).
3. Each trial trains the gates at one strength (:func:`akd_tf.gate_training.train_gates`), extracts the
   student, measures it on the device, fine-tunes it briefly against the teacher (the run's proxy
   settings) and scores it on mini-val; its reward is the run's reward of that accuracy and latency.
4. The next strength comes from the stored trials alone (:func:`next_strength`): ten times up while
   every student is too slow, ten times down while every one is too fast, then the geometric mean of
   the closest strengths on either side. The run ends when a student is within the tolerance of the
   target, when the strengths cannot be split further, or when the trial budget is spent.

Trials are stored as they finish, with their strength and every gate value, so an interrupted run
resumes at the strength it was working on and never repeats a finished one, and ``akd-tf export --run``
carves the chosen student again exactly (:func:`carve_trial`).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import select

from akd_tf.benchmark import latency_us
from akd_tf.errors import InvalidInput, MissingData
from akd_tf.network_identity import CARVED_SPACE, NamedNetwork, keras_macs, structure_digest
from akd_tf.target import ModelTarget
from latency_db.measure import measure_tflite
from latency_db.measurements import measurement_by_run_key
from latency_db.schema import Measurement, Trial, utcnow
from latency_db.store import Store
from search import runs
from search.config import SearchConfig, SubgraphSettings
from search.evaluate import child_seed, distill_settings, load_teachers, run_training_data, worker_name
from search.rewards import compute_reward

STRENGTH_STEP = 10.0  # how far the strength moves while the target is not yet bracketed
SMALLEST_SPLIT = 1.05  # bracketing strengths closer than this ratio are not split again


@dataclass(frozen=True)
class CarvingTarget:
    """What a subgraph run carves towards: ``latency_ms`` on its device (``--target-ms``) or ``mmacs``
    (``--target-mmacs``, when no latency target is given), and the value."""

    measure: str
    value: float

    @property
    def unit(self) -> str:
        return "ms" if self.measure == "latency_ms" else "M MACs"

    @property
    def flag(self) -> str:
        return "--target-ms" if self.measure == "latency_ms" else "--target-mmacs"

    def of(self, trial) -> float:
        """The trial's (or any row's with ``latency_ms`` and ``mmacs``) value of this measure."""
        return getattr(trial, self.measure)


def carving_target(config: SearchConfig) -> CarvingTarget:
    if config.target_ms is not None:
        return CarvingTarget("latency_ms", config.target_ms)
    return CarvingTarget("mmacs", config.target_mmacs)


def _within(value: float, target: float, tolerance: float) -> bool:
    return abs(value / target - 1.0) <= tolerance


def next_strength(results: list[tuple[float, float]], target: float, settings: SubgraphSettings) -> float | None:
    """The strength to try next given ``(strength, cost)`` of the trials so far (cost: latency or MACs, as the
    target), or None when the search is over: a student is within the tolerance, the bracket is too narrow
    to split, or the strength would leave [min_strength, max_strength]."""
    if not results:
        return settings.first_strength
    if any(_within(cost, target, settings.tolerance) for _, cost in results):
        return None
    too_slow = [s for s, cost in results if cost > target]  # needs a stronger penalty
    too_fast = [s for s, cost in results if cost < target]  # a weaker one
    low, high = (max(too_slow) if too_slow else None), (min(too_fast) if too_fast else None)
    if low is not None and high is not None:
        if high <= low * SMALLEST_SPLIT:
            return None
        return math.sqrt(low * high)
    if low is not None:
        return None if low >= settings.max_strength else min(low * STRENGTH_STEP, settings.max_strength)
    return None if high <= settings.min_strength else max(high / STRENGTH_STEP, settings.min_strength)


# --- carving and measuring ------------------------------------------------------------------------------


def carved_network(teacher_fingerprint: str, plan, extraction) -> NamedNetwork:
    """The latency database's name of an extracted student: the teacher and what was kept of it."""
    structure = {"removed": sorted(extraction.removed_branches),
                 "widths": {producer: kept for producer, (_, kept) in sorted(extraction.widths(plan).items())}}
    student = extraction.student
    return NamedNetwork(CARVED_SPACE, f"{teacher_fingerprint[:12]}:{structure_digest(structure)}",
                        keras_macs(student), int(student.count_params()))


def _run_key(*parts) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:48]


def _measure(store: Store, device: str, network: NamedNetwork, target: ModelTarget, model, run_key: str,
             wait_timeout_s: float | None) -> Measurement:
    """The measurement stored under ``run_key``, else export ``model`` and measure it on ``device`` now."""
    from akd_tf.export import export_tflite

    try:
        return measurement_by_run_key(store, run_key)
    except MissingData:
        pass
    with tempfile.TemporaryDirectory(prefix="akd-tf-") as tmp:
        exported = export_tflite(model, Path(tmp) / "model.tflite", target.quantization)
        return measure_tflite(store, device, network, target, exported.path, exported.sha256, run_key=run_key,
                              wait_timeout_s=wait_timeout_s)


def _ms(measurement: Measurement) -> float:
    return latency_us(measurement) / 1000.0


def layer_latencies(store: Store, config: SearchConfig, model, plan, target: ModelTarget, fingerprint: str,
                    wait_timeout_s: float | None, say: Callable[[str], None]) -> dict[str, float]:
    """Milliseconds of each weighted layer of the teacher that a gate prices, measured alone on the device
    (stored: a resumed run, or another run of the same teacher and device, measures nothing again)."""
    from akd_tf.graph import LayerGraph
    from akd_tf.layer_models import layer_model, layer_network
    from akd_tf.unit_costs import weighted_layer_names

    names, graph = weighted_layer_names(model, plan), LayerGraph.of_model(model)
    latencies, started = {}, time.perf_counter()
    for index, name in enumerate(names, start=1):
        micro = layer_model(model, name, graph)
        network = layer_network(fingerprint, micro)
        # the model row's shape: the layer's input side (1 for a Dense) and channels, its outputs as "classes"
        side = int(micro.input_shape[1]) if len(micro.input_shape) == 4 else 1
        layer_target = ModelTarget(side, int(micro.output_shape[-1]), int(micro.input_shape[-1]), target.quantization)
        key = _run_key("subgraph-layer", config.device, network.key, target.quantization)
        latencies[name] = _ms(_measure(store, config.device, network, layer_target, micro, key, wait_timeout_s))
        if index % 10 == 0 or index == len(names):
            say(f"teacher layers measured on {config.device}: {index} of {len(names)} "
                f"({time.perf_counter() - started:.0f} s)")
    return latencies


# --- the run ------------------------------------------------------------------------------------------------


def _done_results(store: Store, run_id: int, target: CarvingTarget) -> list[tuple[float, float]]:
    """(strength, cost) of the run's finished trials, in order."""
    with store.session() as session:
        trials = session.scalars(select(Trial).where(Trial.run_id == run_id, Trial.status == "done")
                                 .order_by(Trial.number)).all()
        return [(float(t.train["strength"]), float(target.of(t))) for t in trials]


def _facts(config: SearchConfig, training, teacher, plan) -> dict:
    return {"input_shape": [training.resolution, training.resolution, training.channels],
            "classes": training.num_classes, "dataset": training.mini_train.name,
            "data_fingerprint": f"{training.mini_train.fingerprint}/{training.mini_val.fingerprint}",
            "teacher_fingerprint": teacher.fingerprint, "prunable": plan.describe()}


def run_subgraph_search(store: Store, config: SearchConfig, *, cache_dir: str | None = None,
                        wait_timeout_s: float | None = None, say: Callable[[str], None] = lambda _m: None) -> dict:
    """Run (or resume) the subgraph search ``config`` describes (see the module docstring); returns its summary.

    Raises ``ValueError`` before anything trains for a bad setting, a teacher that cannot be gated, or a
    target outside what the teacher can be carved into on the device.
    """
    from akd_tf.extraction import extract_student
    from akd_tf.gate_training import single_teacher_model
    from akd_tf.prunable import find_prunable
    from akd_tf.unit_costs import unit_costs

    config.validate()
    runs.check_resumable(store, config)
    training = run_training_data(config)
    teacher = load_teachers(config.teachers)
    teacher.check_compatible(training.num_classes, training.channels, training.mini_train.name)
    model = single_teacher_model(teacher, training.resolution)
    plan = find_prunable(model)
    target = ModelTarget(training.resolution, training.num_classes, training.channels, config.quantization)
    goal = carving_target(config)
    ones = {name: np.ones(width, np.float32) for name, width in plan.gate_widths.items()}
    zeros = {name: np.zeros(width, np.float32) for name, width in plan.gate_widths.items()}
    bounds = {}
    for label, gates in (("teacher", ones), ("smallest", zeros)):
        extraction = extract_student(model, plan, gates, config.subgraph.threshold)
        network = carved_network(teacher.fingerprint, plan, extraction)
        key = _run_key("subgraph-bound", config.device, network.key, target.quantization)
        latency = _ms(_measure(store, config.device, network, target, extraction.student, key, wait_timeout_s))
        bounds[label] = _Bound(latency, network.macs / 1e6)
    say(f"on {config.device}: the teacher takes {bounds['teacher'].latency_ms:.3f} ms "
        f"({bounds['teacher'].mmacs:.2f} M MACs); the smallest network it can be carved into "
        f"{bounds['smallest'].latency_ms:.3f} ms ({bounds['smallest'].mmacs:.2f} M MACs)")
    _check_target(config, goal, bounds)  # before the run is stored: a run that cannot reach its target is not made
    run, resumed = runs.create_or_resume(store, config, _facts(config, training, teacher, plan))
    say(f"{'resuming' if resumed else 'started'} subgraph search {config.name!r}: carving {plan.describe()} towards "
        f"{goal.value:g} {goal.unit} on {config.device} (within {config.subgraph.tolerance:.0%}), "
        f"{config.subgraph.cost} cost")
    say(training.describe())
    costs = unit_costs(model, plan, config.subgraph.cost, layer_latencies(
        store, config, model, plan, target, teacher.fingerprint, wait_timeout_s, say)
        if config.subgraph.cost == "latency" else None)
    while True:
        results = _done_results(store, run.id, goal)
        strength = next_strength(results, goal.value, config.subgraph)
        number = len(results)
        if strength is None or number >= config.trials:
            runs.finish(store, run.id)
            break
        _trial(store, config, run.id, number, strength, teacher, model, plan, costs, training, target, cache_dir,
               wait_timeout_s, say)
    summary = runs.run_status(store, config.name)
    if not any(_within(cost, goal.value, config.subgraph.tolerance) for _, cost in _done_results(store, run.id, goal)):
        say(f"no student within {config.subgraph.tolerance:.0%} of {goal.value:g} {goal.unit} after "
            f"{runs.trial_count(store, run.id)} trials; the closest are listed by `akd-tf search top {config.name}`")
    return summary


@dataclass(frozen=True)
class _Bound:
    latency_ms: float
    mmacs: float


def _check_target(config: SearchConfig, goal: CarvingTarget, bounds: dict) -> None:
    target, tolerance, unit = goal.value, config.subgraph.tolerance, goal.unit
    teacher, smallest = goal.of(bounds["teacher"]), goal.of(bounds["smallest"])
    if teacher <= target * (1.0 + tolerance):
        raise InvalidInput(f"{goal.flag} {target:g}: the teacher itself takes {teacher:.3f} {unit} on "
                           f"{config.device}, within the target; nothing needs carving (give a lower target)")
    if smallest > target * (1.0 + tolerance):
        raise InvalidInput(f"{goal.flag} {target:g} is below the fastest network this teacher can be carved into: "
                           f"{smallest:.3f} {unit} on {config.device} (every residual branch removed, one "
                           "channel per group); give a higher target")


def _trial(store: Store, config: SearchConfig, run_id: int, number: int, strength: float, teacher, model, plan,
           costs, training, target: ModelTarget, cache_dir, wait_timeout_s, say) -> None:
    from akd_tf.distill import distill
    from akd_tf.gate_training import train_gates

    started_at, started = utcnow(), time.perf_counter()
    settings = config.subgraph.gate_settings(temperature=config.proxy.temperature, batch_size=config.proxy.batch_size,
                                             seed=child_seed(config, number))
    gates = train_gates(teacher, training, plan, costs, strength, settings, cache_dir)
    extraction = gates.extraction
    network = carved_network(teacher.fingerprint, plan, extraction)
    measured = time.perf_counter()
    measurement = _measure(store, config.device, network, target, extraction.student,
                           _run_key("subgraph-trial", config.name, number, network.key), wait_timeout_s)
    latency_seconds = time.perf_counter() - measured
    latency_ms = _ms(measurement)
    carved_top1 = _top1(extraction.student, training)
    finetune = distill(extraction.student, teacher, training,
                       settings=distill_settings(config.proxy, config.reward_source),
                       train=finetune_settings(config, number), cache_dir=cache_dir)
    terms = compute_reward(config.reward, finetune.top1, latency_ms=latency_ms, mmacs=network.macs / 1e6,
                           target_ms=config.target_ms, target_mmacs=config.target_mmacs)
    summary = {
        "strength": strength, "threshold": extraction.threshold,
        "gates": {name: [float(v) for v in values] for name, values in gates.gates.items()},
        "removed_branches": list(extraction.removed_branches),
        "branches": {branch.gate: branch.gate not in extraction.removed_branches for branch in plan.branches},
        "widths": {producer: list(pair) for producer, pair in extraction.widths(plan).items()},
        "gates_below_threshold": gates.gates_below_threshold, "gate_seconds": gates.seconds,
        "gated_top1": gates.train.top1, "gated_agreement": gates.train.agreement, "carved_top1": carved_top1,
        **{key: value for key, value in finetune.to_dict().items() if key not in ("history", "settings")},
    }
    with store.session() as session:
        session.add(Trial(
            run_id=run_id, number=number, step=number, arch=network.key, tokens=[], log_prob=None, status="done",
            mmacs=network.macs / 1e6, params=network.params, latency_ms=latency_ms, latency_source="measured",
            measurement_id=measurement.id, latency_seconds=latency_seconds, accuracy=finetune.top1, train=summary,
            train_seconds=time.perf_counter() - started - latency_seconds, reward=terms["reward"],
            reward_terms=terms, worker=worker_name(), attempts=1, started_at=started_at, finished_at=utcnow(),
            network=network.key))
    goal = carving_target(config)
    reached = latency_ms if goal.measure == "latency_ms" else network.macs / 1e6
    say(f"trial {number}: lambda {strength:.3g} -> {latency_ms:.3f} ms, {network.macs / 1e6:.2f} M MACs "
        f"({reached / goal.value - 1:+.1%} of the target), {len(extraction.removed_branches)} of "
        f"{len(plan.branches)} branches removed, "
        f"{network.params:,} params, mini-val top-1 {carved_top1:.2%} carved, {finetune.top1:.2%} fine-tuned, "
        f"reward {terms['reward']:.4f} ({time.perf_counter() - started:.0f} s)")


def finetune_settings(config: SearchConfig, number: int):
    """How trial ``number``'s carved student is fine-tuned: the proxy's settings, its learning rate scaled by
    ``finetune_lr_scale``, no warm-up (the student starts from the teacher's weights)."""
    train = config.proxy.train_settings(child_seed(config, number))
    return replace(train, learning_rate=train.learning_rate * config.subgraph.finetune_lr_scale, warmup_epochs=0.0)


def _top1(model, training) -> float:
    """Mini-val top-1 of a Keras model (logits out)."""
    from akd_tf import data

    pipeline = data.make_pipeline(training.mini_val, resolution=training.resolution, channels=training.channels,
                                  batch_size=256)
    correct = total = 0
    for images, labels in pipeline:
        predicted = np.argmax(model(images, training=False).numpy(), axis=-1)
        correct += int((predicted == labels.numpy()).sum())
        total += len(predicted)
    return correct / total


def carve_trial(config: SearchConfig, trial: Trial):
    """The student of a subgraph trial, carved again from the run's teacher and the trial's stored gates (the
    teacher's weights, before any fine-tuning), and its network name."""
    from akd_tf.extraction import extract_student
    from akd_tf.gate_training import single_teacher_model
    from akd_tf.prunable import find_prunable

    teacher = load_teachers(config.teachers)
    training = run_training_data(config)
    model = single_teacher_model(teacher, training.resolution)
    plan = find_prunable(model)
    gates = {name: np.asarray(values, np.float32) for name, values in trial.train["gates"].items()}
    extraction = extract_student(model, plan, gates, trial.train["threshold"])
    network = carved_network(teacher.fingerprint, plan, extraction)
    if network.key != trial.arch:
        raise InvalidInput(f"trial #{trial.number} carves {network.key} from {config.teachers[0]} now, not the "
                           f"{trial.arch} it stored: the teacher file changed since the run")
    return extraction.student, network
