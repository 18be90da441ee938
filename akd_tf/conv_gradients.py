"""Faster training steps for convolutions, the model left as it is.

TensorFlow's CPU kernels for a convolution's gradients are slow where a map is small and the channels many,
and a search's students are full of such maps: on a 32x32 input the last blocks of the demo's space run on
2x2 and 1x1 maps, often with 5x5 kernels. This module computes two kinds of layer by cheaper ops that give
the same function, so TensorFlow differentiates those instead:

* **A pointwise convolution** (1x1 kernel, stride 1) is a matrix product over the examples' pixels,
  ``y = x W``, whose gradients are matrix products too (``dx = dy W^T``, ``dW = x^T dy``). Measured for a
  batch of 32: ``Conv2DBackpropInput`` of a 1152 -> 1280 convolution on a 1x1 map took 50 ms against
  2.5 ms as a product; on a 2x2 map a 140 -> 840 expansion's input gradient took 3.1 ms against 0.7 ms.
* **A kernel larger than its map** has taps that only ever meet the zero padding: a 5x5 "same" kernel on a
  1x1 map uses its centre alone, on a 2x2 map its central 3x3. Such a layer is computed with the taps
  that touch a pixel (:func:`touched_taps`), from the kernel's slice: a pointwise product when one tap is
  left, one matrix product when the cropped kernel covers its whole padded map (a single output pixel), a
  smaller convolution otherwise; a depthwise one left with one tap, an elementwise product. Forward and
  gradients of a 200 -> 200 5x5 convolution on a 1x1 map took 22.5 ms built in and 1.2 ms so, a
  100 -> 100 5x5 one on a 2x2 map 6.4 and 3.5 ms (2026-12-02, one thread).

Nothing changes but float rounding: the dropped taps added exact zeros, and the outputs and gradients equal
the built-in ones to float rounding (``tests/test_conv_gradients.py``). :func:`fast_conv_gradients` reroutes
the layers while it is active (graphs traced inside use the cheaper ops); on exit the layers are exactly
what they were, so what is saved or exported never holds anything of this module.
``benchmarks/conv_gradients.py`` measures whole train steps built in against rerouted.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, NamedTuple

import tensorflow as tf
import tf_keras as keras


class Taps(NamedTuple):
    """Along one spatial axis, the kernel taps that touch a pixel of the map: ``count`` taps from ``first``,
    and the zero padding a "valid" convolution with just those taps needs before and after the map to give
    the layer's own output."""

    first: int
    count: int
    pad_before: int
    pad_after: int


def touched_taps(size: int, kernel: int, stride: int, padding: str) -> Taps:
    """The taps of a ``kernel``-wide window (stride ``stride``, dilation 1, TensorFlow's ``"same"`` or
    ``"valid"`` padding) that read a pixel of a map ``size`` pixels wide for some output pixel."""
    if padding == "valid":
        return Taps(0, kernel, 0, 0)
    outputs = -(-size // stride)
    pad_total = max((outputs - 1) * stride + kernel - size, 0)
    before = pad_total // 2
    # output i reads pixel i * stride - before + tap: in the map for some i iff the tap is in [first, last]
    first = max(0, before - (outputs - 1) * stride)
    last = min(kernel - 1, size - 1 + before)
    count = last - first + 1
    pad_before = before - first
    return Taps(first, count, pad_before, (outputs - 1) * stride + count - size - pad_before)


def _pointwise(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``inputs`` (N, H, W, C) convolved with a (1, 1, C, F) ``kernel``, written as the matrix product it is, so
    that its gradients are TensorFlow's matrix-product gradients (no custom gradient: in graph mode each
    ``tf.custom_gradient`` registers its function in TensorFlow's global gradient registry, which kept every
    child's train graph alive). H and W must be known."""
    height, width = inputs.shape[1], inputs.shape[2]
    channels, filters = kernel.shape[2], kernel.shape[3]  # known when a layer is built: fewer ops to trace
    product = tf.matmul(tf.reshape(inputs, (-1, channels)), tf.reshape(kernel, (channels, filters)))  # (NHW, F)
    return tf.reshape(product, (-1, height, width, filters))


def _touched(inputs: tf.Tensor, kernel: tf.Tensor, strides, padding: str) -> tuple[Taps, Taps] | None:
    """The taps along rows and columns that touch the map (:func:`touched_taps`), or None where every tap
    does or the map's size is unknown."""
    if inputs.shape.rank != 4 or None in tuple(inputs.shape[1:3]):
        return None
    rows, cols = (touched_taps(inputs.shape[axis], kernel.shape[axis - 1], strides[axis - 1], padding)
                  for axis in (1, 2))
    if rows.count == kernel.shape[0] and cols.count == kernel.shape[1]:
        return None
    return rows, cols


def _crop(inputs: tf.Tensor, kernel: tf.Tensor, rows: Taps, cols: Taps) -> tuple[tf.Tensor, tf.Tensor]:
    """The map padded as the kernel's touching taps need, and the kernel's slice of those taps."""
    sliced = kernel[rows.first:rows.first + rows.count, cols.first:cols.first + cols.count]
    pads = ((0, 0), (rows.pad_before, rows.pad_after), (cols.pad_before, cols.pad_after), (0, 0))
    padded = tf.pad(inputs, pads) if any(p for pair in pads for p in pair) else inputs
    return padded, sliced


def _conv2d_op(default: Callable, strides, padding: str, pointwise: bool) -> Callable:
    """A ``Conv2D.convolution_op``: a pointwise layer as :func:`_pointwise` (where its map's size is known), a
    layer with taps that never touch its map as the cheapest op for the taps that do, ``default`` elsewhere."""

    def convolution_op(inputs, kernel):
        if pointwise:
            if inputs.shape.rank != 4 or None in tuple(inputs.shape[1:3]):
                return default(inputs, kernel)
            return _pointwise(inputs, kernel)
        touched = _touched(inputs, kernel, strides, padding)
        if touched is None:
            return default(inputs, kernel)
        padded, sliced = _crop(inputs, kernel, *touched)
        if tuple(sliced.shape[:2]) == (1, 1) and tuple(strides) == (1, 1):
            return _pointwise(padded, sliced)
        if tuple(padded.shape[1:3]) == tuple(sliced.shape[:2]):  # one output pixel: one matrix product
            flat = tf.reshape(padded, (-1, sliced.shape[0] * sliced.shape[1] * sliced.shape[2]))
            product = tf.matmul(flat, tf.reshape(sliced, (flat.shape[1], sliced.shape[3])))
            return tf.reshape(product, (-1, 1, 1, sliced.shape[3]))
        return tf.nn.conv2d(padded, sliced, strides=list(strides), padding="VALID")

    return convolution_op


def _depthwise_call(layer: keras.layers.DepthwiseConv2D) -> Callable:
    """A ``DepthwiseConv2D.call`` that computes a layer left with one tap on its map (a kernel of any size on
    a 1x1 map) as the elementwise product it is, and calls the layer's own elsewhere (cropping to
    several taps measured no faster for depthwise kernels: 0.5-1.2x per layer)."""
    own_call = layer.call

    def call(inputs):
        touched = _touched(inputs, layer.depthwise_kernel, layer.strides, layer.padding)
        if touched is None or any(taps.count != 1 or taps.pad_before or taps.pad_after for taps in touched):
            return own_call(inputs)  # one tap, no padding: each output pixel is its input pixel times the tap
        padded, sliced = _crop(inputs, layer.depthwise_kernel, *touched)  # sliced: (1, 1, C, multiplier)
        outputs = padded[..., None] * sliced[0, 0]  # (N, H, W, C, multiplier)
        outputs = tf.reshape(outputs, (-1, *outputs.shape[1:3], sliced.shape[2] * sliced.shape[3]))
        if layer.use_bias:
            outputs = tf.nn.bias_add(outputs, layer.bias)
        return outputs if layer.activation is None else layer.activation(outputs)

    return call


def is_pointwise(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a channels-last ``Conv2D`` with a 1x1 kernel, stride 1, no dilation and no groups
    (``SeparableConv2D`` and ``DepthwiseConv2D`` are not: their ops differ)."""
    return _is_plain_conv2d(layer) and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1)


def _is_plain_conv2d(layer: keras.layers.Layer) -> bool:
    return (type(layer) is keras.layers.Conv2D and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
            and layer.data_format == "channels_last" and layer.padding in ("same", "valid"))


def _is_plain_depthwise(layer: keras.layers.Layer) -> bool:
    return (type(layer) is keras.layers.DepthwiseConv2D and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last" and layer.padding in ("same", "valid"))


@contextlib.contextmanager
def fast_conv_gradients(model: keras.Model) -> Iterator[int]:
    """While active, the convolutions of ``model`` (nested models included) that cheaper ops compute are
    computed by them: every pointwise ``Conv2D`` (:func:`is_pointwise`), and every other ``Conv2D`` or
    ``DepthwiseConv2D`` (stride any, dilation 1) with taps that never touch its map. Yields how many layers
    it watches (whether a layer is rerouted is decided by its map's size when a graph is traced).

    Only graphs traced inside the block use the cheaper ops (a ``fit`` traces its steps there). The layers get
    an instance attribute that is removed on exit, so their class, config and weights never change.
    """
    conv_layers = [layer for layer in _all_layers(model) if _is_plain_conv2d(layer)]
    depthwise_layers = [layer for layer in _all_layers(model) if _is_plain_depthwise(layer)]
    for layer in conv_layers:
        layer.convolution_op = _conv2d_op(layer.convolution_op, layer.strides, layer.padding, is_pointwise(layer))
    for layer in depthwise_layers:
        layer.call = _depthwise_call(layer)
    try:
        yield len(conv_layers) + len(depthwise_layers)
    finally:
        for layer in conv_layers:
            del layer.convolution_op
        for layer in depthwise_layers:
            del layer.call


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
