import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.profiler import model_analyzer, option_builder

from akd_tf.models import build_student
from akd_tf.plan import plan_network


def profiler_macs(model, input_shape):
    """Independent count: TF's profiler float ops of conv / depthwise / matmul nodes, halved."""
    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec((1, *input_shape))))
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["account_type_regexes"] = ["Conv2D", "DepthwiseConv2dNative", "MatMul"]
    opts["output"] = "none"
    return model_analyzer.profile(frozen.graph, options=opts).total_float_ops / 2


@pytest.fixture(autouse=True)
def fresh_session():
    keras.backend.clear_session()


def test_params_match_keras_exactly(space, smallest_arch, largest_arch):
    for arch in space.sample_many(6, seed=11) + [smallest_arch, largest_arch]:
        for shape, classes in (((32, 32, 3), 10), ((64, 48, 1), 7)):
            model = build_student(arch, shape, classes)
            assert model.count_params() == plan_network(arch, shape, classes).params, arch.to_string()


def test_params_match_at_224_with_1000_classes(space):
    for arch in space.sample_many(2, seed=5):
        model = build_student(arch, (224, 224, 3), 1000)
        assert model.output_shape == (None, 1000)
        assert model.count_params() == plan_network(arch, (224, 224, 3), 1000).params


def test_macs_match_tf_profiler(space, largest_arch):
    for arch in space.sample_many(4, seed=2) + [largest_arch]:
        plan = plan_network(arch, (96, 96, 3), 10)
        measured = profiler_macs(build_student(arch, (96, 96, 3), 10), (96, 96, 3))
        assert abs(plan.macs - measured) / measured < 0.01, arch.to_string()


def test_hand_computed_stem_and_head(space, smallest_arch):
    plan = plan_network(smallest_arch, (32, 32, 3), 10)
    assert plan.stem.params == 3 * 3 * 3 * 32 + 4 * 32
    assert plan.stem.macs == 16 * 16 * 3 * 3 * 3 * 32
    last = plan.layers[-1].output_shape
    assert last == (1, 1, 120)  # block 7 removed (0 layers): block 6 at width 0.75 x 160
    assert plan.head.params == 120 * 1280 + 4 * 1280 + 1280 * 10 + 10
    assert plan.params == plan.stem.params + sum(plan.block_params(b) for b in range(1, 8)) + plan.head.params
    assert plan.macs == plan.stem.macs + sum(plan.block_macs(b) for b in range(1, 8)) + plan.head.macs


def test_zero_layer_blocks_are_removed_and_residuals_only_where_shapes_allow(space):
    arch = space.parse("mbconv6_k5_se0.25_id_w1_n0:mbconv3_k3_se0_id_w1_n3:dwconv_k3_se0_id_w1_n2:"
                       "conv_k3_se0_id_w1_n3:mbconv6_k3_se0_id_w1_n1:mbconv6_k3_se0_id_w1_n2:"
                       "dwconv_k3_se0_id_w1_n1")
    plan = plan_network(arch, (32, 32, 3), 10)
    assert plan.block_layers(1) == ()
    assert [(layer.name, layer.residual) for layer in plan.block_layers(2)] == [
        ("block2_layer1", False), ("block2_layer2", True), ("block2_layer3", True)]
    assert plan.block_layers(7)[0].residual is False  # 160 -> 320 channels
    model = build_student(arch, (32, 32, 3), 10)
    names = {layer.name for layer in model.layers}
    assert "block2_layer2_add" in names and "block2_layer1_add" not in names
    assert not any(name.startswith("block1_") for name in names)


def test_layer_names_are_deterministic(space):
    arch = space.parse("mbconv6_k5_se0.25_id_w1_n1:mbconv3_k3_se0_id_w1_n2:dwconv_k3_se0.25_id_w1_n2:"
                       "conv_k3_se0.25_id_w1_n3:mbconv6_k3_se0_id_w1_n1:mbconv6_k3_se0_id_w1_n2:"
                       "dwconv_k3_se0_id_w1_n1")
    names = [layer.name for layer in build_student(arch, (32, 32, 3), 10).layers]
    assert names[:4] == ["image", "stem_conv", "stem_bn", "stem_relu"]
    assert names[4:11] == ["block1_layer1_expand_conv", "block1_layer1_expand_bn", "block1_layer1_expand_relu",
                           "block1_layer1_dwconv", "block1_layer1_dwconv_bn", "block1_layer1_dwconv_relu",
                           "block1_layer1_se_squeeze"]
    assert "block3_layer1_dwconv" in names and "block4_layer2_conv" in names and "block4_layer2_se_excite" in names
    assert names[-5:] == ["head_bn", "head_relu", "embedding", "head_dropout", "logits"]
    assert names == [layer.name for layer in build_student(arch, (32, 32, 3), 10).layers]


def test_builder_options(space):
    arch = space.sample_many(1, seed=4)[0]
    model = build_student(arch, (40, 40, 3), 5, with_embedding=True, dropout=0.0)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 5), (None, 1280)]
    assert all(layer.momentum == 0.9 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert "head_dropout" not in {layer.name for layer in model.layers}
    with pytest.raises(ValueError, match=r"bn_momentum must be in \[0, 1\), got 1.5"):
        build_student(arch, (32, 32, 3), 10, bn_momentum=1.5)


@pytest.mark.parametrize("shape, classes, message", [
    ((16, 16, 3), 10, "space 'mnasnet': resolution must be an int in 32..224, got 16"),
    ((32, 300, 3), 10, "space 'mnasnet': resolution must be an int in 32..224, got 300"),
    ((32, 32), 10, r"input_shape must be \(height, width, channels\), got \(32, 32\)"),
    ((32, 32, 3), 1, "num_classes must be an int >= 2, got 1"),
])
def test_bad_shapes_are_rejected(space, shape, classes, message):
    with pytest.raises(ValueError, match=message):
        plan_network(space.sample_many(1, seed=0)[0], shape, classes)


def test_folded_params_and_activation_elements_match_the_built_model(space, smallest_arch, largest_arch):
    """Folding leaves a bias per BatchNorm channel (1 of its 4 parameters); the activations an operator writes
    are the outputs of its convolutions (SE excluded), of the head's pooling and of the logits."""
    from akd_tf.operators import folded_params
    from akd_tf.walk import walk

    for arch in space.sample_many(3, seed=12) + [smallest_arch, largest_arch]:
        model = build_student(arch, (32, 32, 3), 10)
        bn_channels = sum(layer.input_shape[-1] for layer in model.layers
                          if isinstance(layer, keras.layers.BatchNormalization))
        operators = list(walk(arch, (32, 32, 3), 10))
        assert sum(folded_params(op) for op in operators) == model.count_params() - 3 * bn_channels
        written = sum(int(tf.reduce_prod(layer.output_shape[1:])) for layer in model.layers
                      if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                            keras.layers.GlobalAveragePooling2D, keras.layers.Dense))
                      and "_se_" not in layer.name)
        assert sum(op.activation_elements for op in operators) == written, arch.to_string()
