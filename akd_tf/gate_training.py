"""Train a gated teacher's gates, then carve the student: one run of the subgraph strategy at one strength.

The objective, over mini-train batches, is

    T^2 * KL(softmax(z_t / T) || softmax(z_s / T))  +  strength * sum_i c_i * |g_i|

where ``z_t`` are the teacher's logits (from the teacher-output cache), ``z_s`` the gated copy's,
``g_i`` its gates and ``c_i`` their costs (:mod:`akd_tf.unit_costs`, summing to 1). The trainer is the
distillation trainer with ``alpha`` 1: its soft cross-entropy differs from the KL term by the teacher's
entropy, a constant, so the gradients are the same; the L1 term is added to the gated model's losses,
its strength rising linearly from 0 over the first ``ramp`` share of the steps, so the gates find their
balance gradually instead of collapsing together (:class:`GateSettings`). Only the gates learn
(:mod:`akd_tf.gating`). With ``strength`` 0 the gates stay exactly 1: the copy equals
the teacher, the KL term is 0 and so is its gradient. The student is then extracted
(:mod:`akd_tf.extraction`) and is ready to be fine-tuned with the distillation trainer.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from akd_tf import data
from akd_tf.distill import TrainResult, distill
from akd_tf.errors import InvalidInput
from akd_tf.extraction import Extraction, extract_student
from akd_tf.gating import build_gated, gate_values
from akd_tf.prunable import PrunablePlan
from akd_tf.teachers import Teacher
from akd_tf.train_settings import DistillSettings, GateSettings


@dataclass
class GateRun:
    """One strength's gates, the student they carve, and how the gated copy did on mini-val."""

    strength: float
    gates: dict[str, np.ndarray]
    extraction: Extraction
    train: TrainResult
    seconds: float

    @property
    def gates_below_threshold(self) -> int:
        return sum(int((np.abs(v) < self.extraction.threshold).sum()) for v in self.gates.values())


def single_teacher_model(teacher: Teacher, resolution: int):
    """The one Keras model of ``teacher``, checked to take ``resolution``-sized images (the student keeps the
    teacher's input size)."""
    if teacher.is_ensemble:
        raise InvalidInput(f"the subgraph strategy carves a student out of one teacher model; {teacher.describe()}")
    member = teacher.members[0]
    size = teacher.input_resolution(member)
    if size is not None and size != (resolution, resolution):
        if size[0] != size[1]:
            raise InvalidInput(f"the teacher {member.path} takes {size[0]}x{size[1]} images; a student carved out "
                               "of it keeps that size, and akd-tf trains on square images")
        raise InvalidInput(f"the teacher {member.path} takes {size[0]}x{size[1]} images and a student carved out "
                           f"of it keeps that size, but the data is fed at {resolution}x{resolution}; "
                           f"use --resolution {size[0]}")
    return member.model


class _RampStrength(keras.callbacks.Callback):
    """Raises the penalty's strength linearly from 0 to ``strength`` over the first ``ramp_steps`` steps."""

    def __init__(self, variable: tf.Variable, strength: float, ramp_steps: int):
        super().__init__()
        self.variable, self.strength, self.ramp_steps, self.step = variable, strength, ramp_steps, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.step += 1
        self.variable.assign(self.strength * min(1.0, self.step / self.ramp_steps) if self.ramp_steps else
                             self.strength)


def _add_penalty(gated, costs: dict[str, np.ndarray], strength: float, ramp_steps: int) -> _RampStrength:
    """Add ``s * sum_i c_i |g_i|`` to ``gated``'s losses, ``s`` a variable the returned callback ramps up."""
    variable = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="penalty_strength")
    weighted = [(gated.get_layer(name).gate, tf.constant(np.asarray(cost, np.float32))) for name, cost in costs.items()]

    def penalty():
        return variable * tf.add_n([tf.reduce_sum(cost * tf.abs(gate)) for gate, cost in weighted])

    gated.add_loss(penalty)
    return _RampStrength(variable, strength, ramp_steps)


def train_gates(teacher: Teacher, training: data.TrainingData, plan: PrunablePlan, costs: dict[str, np.ndarray],
                strength: float, settings: GateSettings = GateSettings(),
                cache_dir: str | os.PathLike | None = None) -> GateRun:
    """Train the gates of ``teacher``'s gated copy at ``strength`` and extract the student they select."""
    if not strength >= 0.0 or not math.isfinite(strength):
        raise InvalidInput(f"the penalty strength (lambda) must be a number >= 0, got {strength!r}")
    started = time.perf_counter()
    model = single_teacher_model(teacher, training.resolution)
    gated, _ = build_gated(model, plan)
    callbacks = []
    if strength > 0:
        steps = settings.epochs * math.ceil(training.mini_train.num_examples / settings.batch_size)
        callbacks.append(_add_penalty(gated, costs, strength, round(settings.ramp * steps)))
    result = distill(gated, teacher, training, settings=DistillSettings(alpha=1.0, temperature=settings.temperature),
                     train=settings.train_settings(), cache_dir=cache_dir, callbacks=callbacks)
    gates = gate_values(gated)
    extraction = extract_student(model, plan, gates, settings.threshold)
    return GateRun(strength, gates, extraction, result, time.perf_counter() - started)
