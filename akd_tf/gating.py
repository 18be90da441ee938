"""A gated copy of a teacher: a learnable gate on each prunable unit, starting at 1 (the teacher exactly).

:func:`build_gated` inserts a :class:`UnitGate` layer for every unit of :func:`akd_tf.prunable.find_prunable`:
before the ``Add`` on a residual branch (one gate) and before a channel group's consumer (one gate per
channel). A gate multiplies what passes through it, so with every gate at 1 the copy computes the
teacher's outputs bit for bit. The penalty on the gates is the trainer's (:mod:`akd_tf.gate_training`).

The teacher's own layers are frozen in the copy (``trainable=False``: batch norm in inference mode, no
weight updates): only the gates learn which units the teacher's outputs need. With the weights free, a
gate could shrink while the next layer's weights grow to make up for it, and the L1 penalty would
measure nothing.
"""

from __future__ import annotations

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.graph import LayerGraph, LayerNode
from akd_tf.prunable import PrunablePlan, find_prunable


@keras.utils.register_keras_serializable(package="akd_tf")
class UnitInterval(keras.constraints.Constraint):
    """Clips a weight into [0, 1] after each training step."""

    def __call__(self, w):
        return tf.clip_by_value(w, 0.0, 1.0)


@keras.utils.register_keras_serializable(package="akd_tf")
class UnitGate(keras.layers.Layer):
    """Multiplies its input by ``width`` learnable gates on the last axis (``width`` 1: one for the whole tensor),
    all starting at 1.

    Training keeps the gates in [0, 1] (a gate is projected back after each step). At 0: an L1 penalty
    drives unneeded gates to exactly 0 and holds them there, where plain subgradient steps would leave
    them dithering around it. At 1: a gate can switch its unit off, never amplify it, so one gate cannot
    grow to make up for others shrinking (measured on the demo with gates only held >= 0: under the
    plain L1 every channel gate fell to about 0.5 while the branch gates rose to 1.2-2.0, the products
    unchanged, until the whole network collapsed at once)."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InvalidInput(f"a gate's width must be an int >= 1, got {width!r}")
        self.width = width

    def build(self, input_shape):
        self.gate = self.add_weight(name="gate", shape=(self.width,), initializer="ones", trainable=True,
                                    constraint=UnitInterval())
        super().build(input_shape)

    def call(self, inputs):
        return inputs * tf.cast(self.gate, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "width": self.width}


CUSTOM_OBJECTS = {"UnitGate": UnitGate, "UnitInterval": UnitInterval}


def logits_graph(model) -> LayerGraph:
    """The model's graph with a final softmax removed (a ``Softmax`` layer, or a ``Dense``/``Activation``
    with softmax): the distillation compares logits, whose softmax is the teacher's output."""
    graph = LayerGraph.of_model(model)
    last = graph.node(graph.output_name)
    if last.class_name == "Softmax" or (last.class_name == "Activation" and last.config.get("activation") == "softmax"):
        graph.bypass(last.name, last.inputs[0])
    elif last.class_name == "Dense" and last.config.get("activation") == "softmax":
        last.config["activation"] = "linear"
    return graph


def _without_build_shapes(graph: LayerGraph) -> None:
    for name in graph.order:  # the stored input shapes are the teacher's; layers find theirs when rebuilt
        graph.node(name).config.pop("build_config", None)


def rebuild(graph: LayerGraph) -> keras.Model:
    """A fresh functional model of ``graph`` (new weights: copy them in)."""
    _without_build_shapes(graph)
    return keras.Model.from_config(graph.to_config(), custom_objects=CUSTOM_OBJECTS)


def build_gated(teacher: keras.Model, plan: PrunablePlan | None = None,
                freeze_teacher: bool = True) -> tuple[keras.Model, PrunablePlan]:
    """The gated copy of ``teacher`` (logits out) and its plan; every gate 1, the teacher's weights copied."""
    plan = plan or find_prunable(teacher)
    graph = logits_graph(teacher)
    for branch in plan.branches:
        graph.insert_after(branch.branch_input, branch.add,
                           LayerNode(branch.gate, "UnitGate", {"name": branch.gate, "width": 1}, []))
    for group in plan.groups:
        source = group.chain[-1] if group.chain else group.producer
        graph.insert_after(source, group.consumer,
                           LayerNode(group.gate, "UnitGate", {"name": group.gate, "width": group.width}, []))
    gated = rebuild(graph)
    for layer in gated.layers:
        if isinstance(layer, UnitGate):
            continue
        layer.set_weights(teacher.get_layer(layer.name).get_weights())
        if freeze_teacher:
            layer.trainable = False
    return gated, plan


def gate_values(gated: keras.Model) -> dict[str, np.ndarray]:
    """Gate layer name -> its gates (a copy)."""
    return {layer.name: layer.gate.numpy().copy() for layer in gated.layers if isinstance(layer, UnitGate)}


def set_gate_values(gated: keras.Model, values: dict[str, np.ndarray]) -> None:
    """Set the named gate layers' gates (others keep theirs)."""
    for name, value in values.items():
        layer = gated.get_layer(name)
        layer.gate.assign(np.asarray(value, dtype=np.float32).reshape(layer.gate.shape))
