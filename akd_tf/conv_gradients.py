"""Faster training gradients of pointwise convolutions, the model left as it is.

A pointwise convolution (a 1x1 kernel, stride 1, no dilation, no groups) is a matrix product over the
examples' pixels, ``y = x W``. TensorFlow's CPU kernels for its gradients are slow, most of all where a
map is small and the channels many: measured on this project's host for a batch of 32, ``Conv2DBackpropInput``
of a 1152 -> 1280 convolution on a 1x1 map took 50 ms against 1.4 ms for the forward convolution, and its
filter gradient 3.7 ms. The same gradients as matrix products,

    dx = dy W^T,    dW = x^T dy    (the batch's pixels as rows),

took 2.5 and 1.3 ms. On a 2x2 map a 140 -> 840 expansion's input gradient took 3.1 ms built in against
0.7 ms as a product (2026-12-02); on larger maps the two are closer, and over whole train steps rerouting
every pointwise convolution beat rerouting only those on 1x1 maps: 79.3 -> 75.5 ms per step, the mean of 8
random children of the demo's space at batch 32 with a search's threads, the two alternated in one process
(docs/performance.md). ``benchmarks/pointwise_gradients.py`` measures built in against rerouted.

:func:`fast_pointwise_gradients` reroutes a model's pointwise ``Conv2D`` layers while it is active: the
layer is computed as the matrix product it is, so TensorFlow differentiates a ``MatMul``. Its output equals
the convolution's bit for bit (TensorFlow computes a pointwise convolution as that product) and its gradients
equal them to float rounding (``tests/test_conv_gradients.py``). On exit the layers are exactly what they were,
so what is saved or exported never holds anything of this module.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf
import tf_keras as keras


def _pointwise(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``inputs`` (N, H, W, C) convolved with a (1, 1, C, F) ``kernel``, written as the matrix product it is, so
    that its gradients are TensorFlow's matrix-product gradients (no custom gradient: in graph mode each
    ``tf.custom_gradient`` registers its function in TensorFlow's global gradient registry, which kept every
    child's train graph alive). H and W must be known."""
    height, width = inputs.shape[1], inputs.shape[2]
    channels, filters = kernel.shape[2], kernel.shape[3]  # known when a layer is built: fewer ops to trace
    product = tf.matmul(tf.reshape(inputs, (-1, channels)), tf.reshape(kernel, (channels, filters)))  # (NHW, F)
    return tf.reshape(product, (-1, height, width, filters))


def _as_product(default):
    """A ``convolution_op`` that uses :func:`_pointwise` where the map's size is known, ``default`` elsewhere."""

    def convolution_op(inputs, kernel):
        if inputs.shape.rank != 4 or None in tuple(inputs.shape[1:3]):
            return default(inputs, kernel)
        return _pointwise(inputs, kernel)

    return convolution_op


def is_pointwise(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a channels-last ``Conv2D`` with a 1x1 kernel, stride 1, no dilation and no groups
    (``SeparableConv2D`` and ``DepthwiseConv2D`` are not: their ops differ)."""
    return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1 and layer.data_format == "channels_last")


@contextlib.contextmanager
def fast_pointwise_gradients(model: keras.Model) -> Iterator[int]:
    """While active, every pointwise ``Conv2D`` of ``model`` (:func:`is_pointwise`, nested models included)
    is computed as a matrix product (where its map's height and width are known); yields how many layers those
    are.

    Only graphs traced inside the block use them (a ``fit`` traces its train step there). The layers get an
    instance attribute that is removed on exit, so their class, config and weights never change.
    """
    layers = [layer for layer in _all_layers(model) if is_pointwise(layer)]
    for layer in layers:
        layer.convolution_op = _as_product(layer.convolution_op)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.convolution_op


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
