"""Convolutions computed by cheaper ops while training (pointwise ones as matrix products, kernels larger than
their maps from the taps that touch them): the same numbers to float rounding, the model unchanged."""

import numpy as np
import pytest

import akd_tf.tf_env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from akd_tf.conv_gradients import Taps, fast_conv_gradients, is_pointwise, touched_taps
from akd_tf.models import build_student
from akd_tf.space import get_space


def _gradients(model, images):
    """The outputs, and the gradients of a loss with respect to the images and then every trainable variable."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = model(images, training=True)
        loss = tf.reduce_sum(tf.square(outputs))
    return outputs, tape.gradient(loss, [images, *model.trainable_variables])


def test_which_layers_are_pointwise():
    assert is_pointwise(keras.layers.Conv2D(8, 1))
    assert is_pointwise(keras.layers.Conv2D(8, (1, 1), padding="same"))
    assert not is_pointwise(keras.layers.Conv2D(8, 3))
    assert not is_pointwise(keras.layers.Conv2D(8, 1, strides=2))
    assert not is_pointwise(keras.layers.Conv2D(8, 1, dilation_rate=2))
    assert not is_pointwise(keras.layers.Conv2D(8, 1, groups=2))
    assert not is_pointwise(keras.layers.DepthwiseConv2D(1))
    assert not is_pointwise(keras.layers.SeparableConv2D(8, 1))


@pytest.mark.parametrize("spatial", [1, 2, 5, 16])
def test_a_pointwise_conv_has_the_builtin_output_and_gradients(spatial):
    inputs = keras.Input((spatial, spatial, 24))
    model = keras.Model(inputs, keras.layers.Conv2D(40, 1, use_bias=True, activation="relu")(inputs))
    images = tf.random.stateless_normal((3, spatial, spatial, 24), seed=(1, 2))
    expected_out, expected = tf.function(lambda x: _gradients(model, x))(images)
    with fast_conv_gradients(model) as count:
        out, grads = tf.function(lambda x: _gradients(model, x))(images)
    assert count == 1
    np.testing.assert_array_equal(out.numpy(), expected_out.numpy())  # the same forward op
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_a_map_of_unknown_size_keeps_the_builtin_convolution():
    inputs = keras.Input((None, None, 24))
    model = keras.Model(inputs, keras.layers.Conv2D(40, 1)(inputs))
    step = tf.function(lambda x: model(x, training=True),
                       input_signature=[tf.TensorSpec((None, None, None, 24), tf.float32)])
    with fast_conv_gradients(model) as count:
        ops = {op.type for op in step.get_concrete_function().graph.get_operations()}
    assert count == 1 and "Conv2D" in ops and "MatMul" not in ops
    with fast_conv_gradients(model):  # a known size: the product
        known = tf.function(lambda x: model(x, training=True)).get_concrete_function(tf.TensorSpec((3, 4, 4, 24)))
    ops = {op.type for op in known.graph.get_operations()}
    assert "MatMul" in ops and "Conv2D" not in ops


def test_the_taps_that_touch_a_map():
    assert touched_taps(1, 5, 1, "same") == Taps(first=2, count=1, pad_before=0, pad_after=0)  # the centre
    assert touched_taps(2, 5, 1, "same") == Taps(first=1, count=3, pad_before=1, pad_after=1)  # the central 3
    assert touched_taps(2, 3, 1, "same") == Taps(first=0, count=3, pad_before=1, pad_after=1)  # every tap
    # stride 2 on a 2x2 map: one output pixel, padded 1 before and 2 after; it reads pixels -1..3
    assert touched_taps(2, 5, 2, "same") == Taps(first=1, count=2, pad_before=0, pad_after=0)
    assert touched_taps(4, 7, 2, "same") == Taps(first=0, count=6, pad_before=2, pad_after=2)
    assert touched_taps(3, 5, 1, "same") == Taps(first=0, count=5, pad_before=2, pad_after=2)
    assert touched_taps(1, 5, 1, "valid") == Taps(first=0, count=5, pad_before=0, pad_after=0)


def _graph_ops(model, shape):
    step = tf.function(lambda x: _gradients(model, x)).get_concrete_function(tf.TensorSpec(shape))
    return [op for op in step.graph.get_operations()]


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
@pytest.mark.parametrize("size,kernel,stride", [(1, 3, 1), (1, 5, 2), (2, 5, 1), (2, 5, 2), (2, 3, 2), (3, 5, 2),
                                                (4, 3, 2)])
def test_a_kernel_larger_than_its_map_gives_the_builtin_output_and_gradients(depthwise, size, kernel, stride):
    inputs = keras.Input((size, size, 6))
    layer = (keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", depth_multiplier=2)
             if depthwise else keras.layers.Conv2D(5, kernel, strides=stride, padding="same", activation="relu"))
    model = keras.Model(inputs, layer(inputs))
    images = tf.random.stateless_normal((3, size, size, 6), seed=(5, 6))
    expected_out, expected = tf.function(lambda x: _gradients(model, x))(images)
    with fast_conv_gradients(model) as count:
        out, grads = tf.function(lambda x: _gradients(model, x))(images)
        ops = _graph_ops(model, images.shape)
    assert count == 1
    np.testing.assert_allclose(out.numpy(), expected_out.numpy(), rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    convolutions = [op for op in ops if op.type in ("Conv2D", "DepthwiseConv2dNative")]
    taps = touched_taps(size, kernel, stride, "same")
    if depthwise:  # only a single tap is rerouted (an elementwise product); several keep the layer's own op
        assert len(convolutions) == (0 if taps.count == 1 else 1)
        if convolutions:
            assert tuple(convolutions[0].inputs[1].shape[:2]) == (kernel, kernel)
    elif taps.count == kernel:  # every tap touches: the built-in convolution
        assert [tuple(op.inputs[1].shape[:2]) for op in convolutions] == [(kernel, kernel)]
    elif taps.count == 1 or size + taps.pad_before + taps.pad_after == taps.count:  # one product
        assert convolutions == [] and "MatMul" in {op.type for op in ops}
    else:  # a convolution with the touching taps alone
        assert [tuple(op.inputs[1].shape[:2]) for op in convolutions] == [(taps.count, taps.count)]


def test_a_student_trains_with_the_same_gradients_and_is_unchanged_afterwards():
    space = get_space()
    arch = next(a for a in space.sample_many(20, 3) if any(b.se_ratio > 0 for b in a.blocks))
    model = build_student(arch, (32, 32, 3), 10)
    for layer in model.layers:  # the same function twice: no random dropout masks
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    config_before = model.get_config()
    images = tf.random.stateless_normal((4, 32, 32, 3), seed=(3, 4))
    step = tf.function(lambda x: _gradients(model, x))
    expected_out, expected = step(images)
    with fast_conv_gradients(model) as count:
        out, grads = tf.function(lambda x: _gradients(model, x))(images)
        rerouted = [op.type for op in _graph_ops(model, images.shape)]
    built_in = [op.type for op in _graph_ops(model, images.shape)]
    convolutions = ("Conv2D", "DepthwiseConv2dNative")
    assert count == sum(type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D) for layer in model.layers)
    assert sum(map(rerouted.count, convolutions)) < sum(map(built_in.count, convolutions))  # its 1x1 maps' layers
    np.testing.assert_allclose(out.numpy(), expected_out.numpy(), rtol=1e-5, atol=1e-5)
    # Float rounding only. A BatchNorm's beta followed by another BatchNorm has a gradient of exactly 0 in exact
    # arithmetic and of rounding noise here (up to 1e-6 of the largest gradient), hence the absolute floor.
    scale = max(float(tf.reduce_max(tf.abs(want))) for want in expected)
    names = ["images", *(variable.name for variable in model.trainable_variables)]
    for name, got, want in zip(names, grads, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name)
    assert all("convolution_op" not in vars(layer) and "call" not in vars(layer)
               for layer in model.layers)  # nothing left on the layers
    assert model.get_config() == config_before
