"""Carve the student out of a gated teacher: remove the units whose gates fell below a threshold.

The student is a plain Keras model of the teacher's own layer types (no gates, no masks): a removed
branch is gone and its ``Add`` reads the shortcut alone; a channel group keeps only its kept channels
(the producer's filters, every per-channel layer between and the consumer's input are sliced). The
kept gates are folded into weights: a branch's gate scales its last layer (batch norm gamma and beta,
or a convolution's kernel and bias), a channel's gate scales the consumer's weights of that channel.
So before any fine-tuning the student computes exactly what the gated model computes with the removed
gates set to zero (:attr:`Extraction.effective_gates`), up to float rounding.

A channel group keeps at least its strongest channel, so a huge penalty leaves a thin network, not an
invalid one; a residual branch can go entirely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import numpy as np
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.gating import logits_graph, rebuild
from akd_tf.prunable import PrunablePlan
from akd_tf.train_settings import DEFAULT_GATE_THRESHOLD


@dataclass
class Extraction:
    """What was kept: the student, per-unit decisions, and the gate values the student reproduces."""

    student: keras.Model
    removed_branches: tuple[str, ...]
    kept_channels: dict[str, np.ndarray]  # channel group gate -> kept channel indices (sorted)
    effective_gates: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = DEFAULT_GATE_THRESHOLD

    def widths(self, plan: PrunablePlan) -> dict[str, tuple[int, int]]:
        """Producer layer -> (teacher width, student width; 0 when its branch was removed)."""
        return {g.producer: (g.width, len(self.kept_channels[g.gate]) if g.gate in self.kept_channels else 0)
                for g in plan.groups}


def _decide(plan: PrunablePlan, gates: dict[str, np.ndarray], threshold: float):
    removed = tuple(b.gate for b in plan.branches if abs(float(np.ravel(gates[b.gate])[0])) < threshold)
    kept, effective = {}, {}
    for branch in plan.branches:
        value = np.asarray(gates[branch.gate], dtype=np.float32).reshape(1)
        effective[branch.gate] = np.zeros(1, np.float32) if branch.gate in removed else value
    for group in plan.groups:
        value = np.asarray(gates[group.gate], dtype=np.float32).reshape(group.width)
        if group.branch in removed:
            effective[group.gate] = value  # the whole branch is gone; its channel gates change nothing
            continue
        keep = np.flatnonzero(np.abs(value) >= threshold)
        if keep.size == 0:
            keep = np.array([int(np.argmax(np.abs(value)))])
        kept[group.gate] = keep
        zeroed = np.zeros_like(value)
        zeroed[keep] = value[keep]
        effective[group.gate] = zeroed
    return removed, kept, effective


def _check_gates(plan: PrunablePlan, gates: dict[str, np.ndarray], threshold: float) -> None:
    if not threshold >= 0.0:
        raise InvalidInput(f"threshold must be >= 0, got {threshold!r}")
    for name, width in plan.gate_widths.items():
        if name not in gates:
            raise InvalidInput(f"no value for gate {name!r}")
        if np.size(gates[name]) != width:
            raise InvalidInput(f"gate {name!r} has {np.size(gates[name])} values, expected {width}")


def extract_student(teacher: keras.Model, plan: PrunablePlan, gates: dict[str, np.ndarray],
                    threshold: float = DEFAULT_GATE_THRESHOLD) -> Extraction:
    """The student of ``teacher`` that keeps the units whose gates are at least ``threshold`` in magnitude."""
    _check_gates(plan, gates, threshold)
    removed, kept, effective = _decide(plan, gates, threshold)
    graph = logits_graph(teacher)
    for branch in plan.branches:
        if branch.gate in removed:
            graph.bypass(branch.add, branch.shortcut_input)
    graph.prune()
    for group in plan.groups:
        if group.gate in kept:
            graph.node(group.producer).config["filters"] = int(kept[group.gate].size)
    student = rebuild(graph)
    weights = {layer.name: [np.array(w) for w in teacher.get_layer(layer.name).get_weights()]
               for layer in student.layers}
    for group in plan.groups:
        if group.gate not in kept:
            continue
        keep = kept[group.gate]
        _slice_output(weights[group.producer], keep)
        for member in group.chain:
            _slice_channelwise(teacher.get_layer(member), weights[member], keep)
        _slice_input(teacher.get_layer(group.consumer), weights[group.consumer], keep, effective[group.gate][keep])
    for branch in plan.branches:
        if branch.gate not in removed:
            _scale_output(teacher.get_layer(branch.fold_into), weights[branch.fold_into],
                          float(effective[branch.gate][0]))
    for layer in student.layers:
        layer.set_weights(weights[layer.name])
    return Extraction(student, removed, kept, effective, threshold)


def _slice_output(weights, keep) -> None:
    """A Conv2D's output channels: kernel (..., out) and bias (out)."""
    weights[0] = weights[0][..., keep]
    if len(weights) > 1:
        weights[1] = weights[1][keep]


def _slice_channelwise(layer, weights, keep) -> None:
    """A per-channel layer's channels: every batch-norm vector; a depthwise kernel (h, w, channels, 1) and bias."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        weights[0] = weights[0][:, :, keep, :]
        if len(weights) > 1:
            weights[1] = weights[1][keep]
    else:
        for index, value in enumerate(weights):
            weights[index] = value[keep]


def _slice_input(layer, weights, keep, scale) -> None:
    """A consumer's input channels, each scaled by its gate: Conv2D kernel (h, w, in, out), Dense kernel (in, out)."""
    if isinstance(layer, keras.layers.Dense):
        weights[0] = weights[0][keep, :] * scale[:, None]
    else:
        weights[0] = weights[0][:, :, keep, :] * scale[None, None, :, None]


def _scale_output(layer, weights, scale: float) -> None:
    """Multiply a layer's output by ``scale``: batch norm's gamma and beta, or a kernel and its bias."""
    if isinstance(layer, keras.layers.BatchNormalization):
        weights[0] = weights[0] * scale  # gamma (the plan only folds into batch norms with scale=True)
        if layer.center:
            weights[1] = weights[1] * scale
    else:
        weights[0] = weights[0] * scale
        if len(weights) > 1:
            weights[1] = weights[1] * scale
