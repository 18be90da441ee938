"""Faster training gradients of pointwise convolutions on a 1x1 feature map, the model left as it is.

A pointwise convolution (a 1x1 kernel, stride 1, no dilation, no groups) is a matrix product over the
examples' pixels, ``y = x W``. On a 1x1 feature map (a squeeze-and-excitation layer, or the head of a
network whose input was 32x32) TensorFlow's CPU kernel for its input gradient is pathologically slow:
measured on this project's host for a batch of 32, ``Conv2DBackpropInput`` of a 1152 -> 1280 convolution
took 50 ms against 1.4 ms for the forward convolution, and its filter gradient 3.7 ms. The same gradients
as matrix products,

    dx = dy W^T,    dW = x^T dy    (the batch's pixels as rows),

took 2.5 and 1.3 ms. On larger maps the built-in kernels are as fast as the products (within 0.1-0.3 ms
either way), so only 1x1 maps are rerouted. Over six random children of the demo's space at batch 32, a
train step took 1-20% less, 8-9% on average (``benchmarks/pointwise_gradients.py``).

:func:`fast_pointwise_gradients` reroutes a model's pointwise ``Conv2D`` layers while it is active: on a
1x1 map the layer is computed as the matrix product it is, so TensorFlow differentiates a ``MatMul``. Its
output equals the convolution's bit for bit and its gradients equal them to float rounding
(``tests/test_conv_gradients.py``). On exit the layers are exactly what they were, so what is saved or
exported never holds anything of this module.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf
import tf_keras as keras


def _pointwise(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``inputs`` (N, 1, 1, C) convolved with a (1, 1, C, F) ``kernel``, written as the matrix product it is, so
    that its gradients are TensorFlow's matrix-product gradients (no custom gradient: in graph mode each
    ``tf.custom_gradient`` registers its function in TensorFlow's global gradient registry, which kept every
    child's train graph alive)."""
    channels, filters = kernel.shape[2], kernel.shape[3]  # known when a layer is built: fewer ops to trace
    product = tf.matmul(tf.reshape(inputs, (-1, channels)), tf.reshape(kernel, (channels, filters)))  # (N, F)
    return tf.reshape(product, (-1, 1, 1, filters))


def _on_one_pixel(default):
    """A ``convolution_op`` that uses :func:`_pointwise` on a 1x1 feature map and ``default`` elsewhere."""

    def convolution_op(inputs, kernel):
        if tuple(inputs.shape[1:3]) != (1, 1):
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
    is computed as a matrix product where its input is a 1x1 map; yields how many layers those are.

    Only graphs traced inside the block use them (a ``fit`` traces its train step there). The layers get an
    instance attribute that is removed on exit, so their class, config and weights never change.
    """
    layers = [layer for layer in _all_layers(model) if is_pointwise(layer)]
    for layer in layers:
        layer.convolution_op = _on_one_pixel(layer.convolution_op)
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
