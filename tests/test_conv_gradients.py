"""Pointwise convolutions' training gradients as matrix products: the same numbers, the model unchanged."""

import numpy as np
import pytest

import akd_tf.tf_env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from akd_tf.conv_gradients import fast_pointwise_gradients, is_pointwise
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
    with fast_pointwise_gradients(model) as count:
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
    with fast_pointwise_gradients(model) as count:
        ops = {op.type for op in step.get_concrete_function().graph.get_operations()}
    assert count == 1 and "Conv2D" in ops and "MatMul" not in ops
    with fast_pointwise_gradients(model):  # a known size: the product
        known = tf.function(lambda x: model(x, training=True)).get_concrete_function(tf.TensorSpec((3, 4, 4, 24)))
    ops = {op.type for op in known.graph.get_operations()}
    assert "MatMul" in ops and "Conv2D" not in ops


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
    with fast_pointwise_gradients(model) as count:
        out, grads = tf.function(lambda x: _gradients(model, x))(images)
    assert count == sum(is_pointwise(layer) for layer in model.layers) > 0
    np.testing.assert_allclose(out.numpy(), expected_out.numpy(), rtol=1e-5, atol=1e-5)
    # Float rounding only. A BatchNorm's beta followed by another BatchNorm has a gradient of exactly 0 in exact
    # arithmetic and of rounding noise here (up to 1e-6 of the largest gradient), hence the absolute floor.
    scale = max(float(tf.reduce_max(tf.abs(want))) for want in expected)
    names = ["images", *(variable.name for variable in model.trainable_variables)]
    for name, got, want in zip(names, grads, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name)
    assert all("convolution_op" not in vars(layer) for layer in model.layers)  # nothing left on the layers
    assert model.get_config() == config_before
