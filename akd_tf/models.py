"""Keras (tf-keras, Keras 2 API) student networks built from a :class:`~akd_tf.plan.NetworkPlan`.

Layer names are deterministic and derived from the plan
(``stem_conv``, ``block3_layer1_dwconv``, ``head_conv``, ``logits``), so
weights, profiles and latency keys line up across runs.
"""

from __future__ import annotations

from typing import Sequence

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.operators import HeadPlan, LayerPlan, StemPlan
from akd_tf.plan import plan_network
from akd_tf.space import Arch

BN_EPSILON = 1e-3
DEFAULT_BN_MOMENTUM = 0.9  # 0.99 leaves short proxy runs at chance accuracy
EMBEDDING_OUTPUT = "embedding"
LOGITS_OUTPUT = "logits"


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, momentum: float, activation: bool):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _squeeze_excite(x, reduced: int, name: str):
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = keras.layers.Conv2D(reduced, 1, activation="relu", name=f"{name}_se_reduce")(s)
    s = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return keras.layers.Multiply(name=f"{name}_se_excite")([x, s])


def _stem(x, plan: StemPlan, momentum: float):
    return _conv_bn(x, plan.filters, plan.kernel, plan.stride, plan.name, momentum, activation=True)


def _layer(inputs, plan: LayerPlan, momentum: float):
    name, x = plan.name, inputs
    if plan.conv_op.kind == "conv":
        x = _conv_bn(x, plan.out_channels, plan.kernel, plan.stride, name, momentum, activation=True)
        if plan.se_channels:
            x = _squeeze_excite(x, plan.se_channels, name)
    else:
        if plan.has_expansion:
            x = _conv_bn(x, plan.expanded_channels, 1, 1, f"{name}_expand", momentum, activation=True)
        x = keras.layers.DepthwiseConv2D(plan.kernel, strides=plan.stride, padding="same", use_bias=False,
                                         name=f"{name}_dwconv")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=f"{name}_dwconv_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_dwconv_relu")(x)
        if plan.se_channels:
            x = _squeeze_excite(x, plan.se_channels, name)
        x = _conv_bn(x, plan.out_channels, 1, 1, f"{name}_project", momentum, activation=False)
    if plan.residual:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _head(x, plan: HeadPlan, momentum: float, dropout: float):
    x = _conv_bn(x, plan.filters, 1, 1, plan.name, momentum, activation=True)
    embedding = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_OUTPUT)(x)
    # rng_type "stateful": the dropout masks come from a tf.random.Generator, whose state is a variable, so a
    # train step's whole state is in variables (akd_tf.distill.warm_up relies on it to undo a step).
    x = embedding
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout", rng_type="stateful")(embedding)
    logits = keras.layers.Dense(plan.num_classes, name=LOGITS_OUTPUT)(x)
    return logits, embedding


def build_student(arch: Arch, input_shape: Sequence[int], num_classes: int, *,
                  bn_momentum: float = DEFAULT_BN_MOMENTUM, dropout: float = 0.2,
                  with_embedding: bool = False) -> keras.Model:
    """Build ``arch`` as a Keras model mapping float images (N, H, W, C) to logits.

    With ``with_embedding`` the model has two outputs, ``[logits, embedding]``,
    the embedding being the pooled penultimate features (``head_filters`` wide).
    """
    if not 0.0 <= bn_momentum < 1.0:
        raise InvalidInput(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")
    if not 0.0 <= dropout < 1.0:
        raise InvalidInput(f"dropout must be in [0, 1), got {dropout!r}")
    plan = plan_network(arch, input_shape, num_classes)
    inputs = keras.Input(shape=plan.input_shape, name="image")
    x = _stem(inputs, plan.stem, bn_momentum)
    for layer in plan.layers:
        x = _layer(x, layer, bn_momentum)
    logits, embedding = _head(x, plan.head, bn_momentum, dropout)
    outputs = [logits, embedding] if with_embedding else logits
    return keras.Model(inputs, outputs, name=f"student_{arch.space.name}")


def build_operator(op, *, bn_momentum: float = DEFAULT_BN_MOMENTUM) -> keras.Model:
    """A micro-model of one plan operator (stem, searched layer or head) at its own input shape.

    The latency table measures these; the layers are exactly those
    :func:`build_student` creates for the same operator.
    """
    inputs = keras.Input(shape=op.input_shape, name="features")
    if isinstance(op, StemPlan):
        outputs = _stem(inputs, op, bn_momentum)
    elif isinstance(op, LayerPlan):
        outputs = _layer(inputs, op, bn_momentum)
    elif isinstance(op, HeadPlan):
        outputs, _ = _head(inputs, op, bn_momentum, dropout=0.0)
    else:
        raise InvalidInput(f"not a plan operator: {op!r}")
    return keras.Model(inputs, outputs, name="operator")
