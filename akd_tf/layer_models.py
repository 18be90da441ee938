"""One layer of a teacher as a model of its own: what the latency cost of the subgraph strategy measures.

:func:`layer_model` wraps a built Conv2D, DepthwiseConv2D or Dense layer of the teacher in a model whose
input has the layer's input shape, with the teacher's weights, followed by the batch norm and activation
that TFLite fuses into it when the teacher has them right after (so the micro-model times what the layer
costs inside the exported teacher). :func:`layer_network` names it for the latency database: the teacher's
fingerprint, the layer's name and its settings, so a changed teacher never reuses a stale measurement.
"""

from __future__ import annotations

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.graph import LayerGraph
from akd_tf.network_identity import TEACHER_LAYER_SPACE, NamedNetwork, structure_digest
from akd_tf.unit_costs import layer_macs

WEIGHTED_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")
FUSED_AFTER = ("BatchNormalization", "ReLU", "Activation")


def _fused_followers(graph: LayerGraph, name: str) -> list[str]:
    """The batch norm / activation layers right after ``name`` that a TFLite conversion folds into it."""
    followers, current = [], name
    while True:
        readers = graph.consumers(current)
        if len(readers) != 1 or graph.node(readers[0]).class_name not in FUSED_AFTER:
            return followers
        if graph.node(readers[0]).class_name == "BatchNormalization" and followers:
            return followers  # an activation before a batch norm: that batch norm is not fused
        followers.append(readers[0])
        current = readers[0]


def layer_model(teacher: keras.Model, name: str, graph: LayerGraph | None = None) -> keras.Model:
    """The micro-model of the teacher's layer ``name`` (see the module docstring); ``graph``: the teacher's
    :class:`~akd_tf.graph.LayerGraph` when the caller has it (read once for many layers)."""
    layer = teacher.get_layer(name)
    if type(layer).__name__ not in WEIGHTED_LAYERS:
        raise InvalidInput(f"layer {name!r} ({type(layer).__name__}) is not a {', '.join(WEIGHTED_LAYERS)} layer")
    inputs = keras.Input(tuple(layer.input_shape[1:]), name=f"{name}_input")
    x = inputs
    for member in [name, *_fused_followers(graph or LayerGraph.of_model(teacher), name)]:
        original = teacher.get_layer(member)
        copy = type(original).from_config(original.get_config())
        x = copy(x)
        copy.set_weights(original.get_weights())
    return keras.Model(inputs, x, name=f"layer_{name}")


def layer_network(teacher_fingerprint: str, model: keras.Model) -> NamedNetwork:
    """The latency database's name of a micro-model from :func:`layer_model`."""
    settings = [{"class": type(layer).__name__, "config": {k: v for k, v in layer.get_config().items() if k != "name"}}
                for layer in model.layers[1:]]
    key = f"{teacher_fingerprint[:12]}:{model.name[len('layer_'):]}:{structure_digest(settings)}"
    return NamedNetwork(TEACHER_LAYER_SPACE, key, int(sum(layer_macs(layer) for layer in model.layers)),
                        int(model.count_params()))
