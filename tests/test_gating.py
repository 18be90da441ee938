"""Gated teachers and the students carved out of them: units found, teacher reproduced, extraction exact."""

from __future__ import annotations

import numpy as np
import pytest

import akd_tf.tf_env  # noqa: F401
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.extraction import extract_student
from akd_tf.gating import UnitGate, build_gated, gate_values, set_gate_values
from akd_tf.prunable import find_prunable
from akd_tf.teachers import build_teacher_model
from akd_tf.unit_costs import layer_macs, unit_costs, weighted_layer_names

SHAPE = (32, 32, 3)


def _with_random_batch_norms(model: keras.Model, seed: int) -> keras.Model:
    """Batch norms with statistics away from the identity, so folding a gate into one is really checked."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
    return model


@pytest.fixture(scope="module")
def resnet20():
    return _with_random_batch_norms(build_teacher_model("resnet20", SHAPE, 10), 1)


@pytest.fixture(scope="module")
def mobilenetv2():
    return _with_random_batch_norms(build_teacher_model("mobilenetv2", SHAPE, 10), 2)


@pytest.fixture(scope="module")
def resnet50():
    return _with_random_batch_norms(build_teacher_model("resnet50", SHAPE, 10), 3)


def _images(count=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, *SHAPE)).astype(np.float32)


def _random_gates(plan, seed, removed_share=0.4):
    """Gates of which about ``removed_share`` are below the default threshold (some negative), the rest kept."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, width in plan.gate_widths.items():
        small = rng.uniform(-0.04, 0.04, width)
        large = rng.uniform(0.3, 1.5, width) * rng.choice([-1.0, 1.0], width)
        values[name] = np.where(rng.random(width) < removed_share, small, large).astype(np.float32)
    return values


def test_resnet20_units_are_its_residual_branches_and_the_channels_inside_them(resnet20):
    plan = find_prunable(resnet20)
    assert [b.add for b in plan.branches] == [f"stage{s}_block{b}_add" for s in (1, 2, 3) for b in (1, 2, 3)]
    assert [(b.branch_input, b.shortcut_input) for b in plan.branches[:4]] == [
        ("stage1_block1_b_bn", "stem_relu"), ("stage1_block2_b_bn", "stage1_block1_out"),
        ("stage1_block3_b_bn", "stage1_block2_out"), ("stage2_block1_b_bn", "stage2_block1_shortcut")]
    assert [(g.producer, g.chain, g.consumer, g.width) for g in plan.groups[:1]] == [
        ("stage1_block1_a_conv", ("stage1_block1_a_bn", "stage1_block1_a_relu"), "stage1_block1_b_conv", 16)]
    assert [g.width for g in plan.groups] == [16] * 3 + [32] * 3 + [64] * 3
    assert all(g.branch == b.gate for g, b in zip(plan.groups, plan.branches))
    assert plan.num_gates == 9 + 336


def test_mobilenetv2_gates_every_expansion(mobilenetv2):
    plan = find_prunable(mobilenetv2)
    producers = {g.producer for g in plan.groups}
    assert {f"block_{i}_expand" for i in range(1, 17)} <= producers
    expansion = next(g for g in plan.groups if g.producer == "block_2_expand")
    assert expansion.consumer == "block_2_project" and expansion.width == 144
    assert "block_2_depthwise" in expansion.chain and expansion.branch == "block_2_add_gate"
    assert len(plan.branches) == 10  # MobileNetV2's residual bottlenecks


@pytest.mark.parametrize("fixture", ["resnet20", "mobilenetv2"])
def test_all_gates_at_one_reproduce_the_teacher_exactly(fixture, request):
    teacher = request.getfixturevalue(fixture)
    gated, plan = build_gated(teacher)
    assert sum(isinstance(layer, UnitGate) for layer in gated.layers) == len(plan.gate_widths)
    images = _images()
    np.testing.assert_array_equal(gated(images).numpy(), teacher(images).numpy())
    assert [w.name for w in gated.trainable_weights] == [f"{name}/gate:0" for name in
                                                         [layer.name for layer in gated.layers
                                                          if isinstance(layer, UnitGate)]]


@pytest.mark.parametrize("fixture, seed", [("resnet20", 3), ("mobilenetv2", 4), ("resnet50", 5)])
def test_the_extracted_student_computes_the_gated_model_with_the_removed_gates_at_zero(fixture, seed, request):
    teacher = request.getfixturevalue(fixture)
    gated, plan = build_gated(teacher)
    extraction = extract_student(teacher, plan, _random_gates(plan, seed))
    student = extraction.student
    assert not any(isinstance(layer, UnitGate) for layer in student.layers)
    assert extraction.removed_branches  # the draw removes some branches, and the rest is narrower
    assert student.count_params() < teacher.count_params() / 2
    set_gate_values(gated, extraction.effective_gates)
    images = _images(8, seed)
    expected = gated(images).numpy()
    np.testing.assert_allclose(student(images).numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    for group in plan.groups:
        if group.gate in extraction.kept_channels:
            assert student.get_layer(group.producer).filters == extraction.kept_channels[group.gate].size
        else:
            assert group.branch in extraction.removed_branches
            assert group.producer not in [layer.name for layer in student.layers]


def test_gates_at_one_remove_nothing(resnet20):
    gated, plan = build_gated(resnet20)
    extraction = extract_student(resnet20, plan, gate_values(gated))
    assert extraction.removed_branches == ()
    assert extraction.student.count_params() == resnet20.count_params()
    images = _images()
    np.testing.assert_array_equal(extraction.student(images).numpy(), resnet20(images).numpy())


def test_gates_all_zero_leave_a_minimal_valid_network(resnet20):
    plan = find_prunable(resnet20)
    extraction = extract_student(resnet20, plan, {name: np.zeros(width) for name, width in plan.gate_widths.items()})
    assert len(extraction.removed_branches) == 9
    names = [layer.name for layer in extraction.student.layers]
    assert not any(name.endswith("_add") or "_a_conv" in name for name in names)
    # what is left: the stem, the two projection shortcuts, the classifier
    assert [n for n in names if isinstance(extraction.student.get_layer(n), keras.layers.Conv2D)] == [
        "stem_conv", "stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert extraction.student(_images()).shape == (4, 10)


def test_a_channel_group_keeps_its_strongest_channel_when_all_fall_below_the_threshold(mobilenetv2):
    plan = find_prunable(mobilenetv2)
    gates = {name: np.ones(width, np.float32) for name, width in plan.gate_widths.items()}
    stem = next(g for g in plan.groups if g.producer == "Conv1")  # not in a branch: it cannot go entirely
    gates[stem.gate] = np.full(stem.width, 0.01, np.float32)
    gates[stem.gate][7] = -0.02
    extraction = extract_student(mobilenetv2, plan, gates)
    assert extraction.kept_channels[stem.gate].tolist() == [7]
    assert extraction.student.get_layer("Conv1").filters == 1


def test_a_softmax_teacher_is_gated_on_its_logits():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    teacher = keras.Model(inputs, outputs)
    gated, plan = build_gated(teacher)
    assert [g.producer for g in plan.groups] == ["c1", "c2"]  # c2 reaches the classifier through the pooling
    images = _images()
    logits = gated(images).numpy()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), teacher(images).numpy(),
                               rtol=1e-5)


def test_a_teacher_with_an_unsupported_layer_is_an_error_naming_it():
    inputs = keras.Input(SHAPE)
    a = keras.layers.Conv2D(4, 3, padding="same", name="left")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="right")(inputs)
    x = keras.layers.Concatenate(name="join")([a, b])
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(InvalidInput, match=r"layer 'join' \(Concatenate\) cannot be gated"):
        find_prunable(keras.Model(inputs, outputs))


def test_a_shared_layer_is_an_error_naming_it():
    inputs = keras.Input(SHAPE)
    conv = keras.layers.Conv2D(3, 3, padding="same", name="twice")
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(conv(conv(inputs))))
    with pytest.raises(InvalidInput, match="layer 'twice' is called 2 times"):
        find_prunable(keras.Model(inputs, outputs))


def test_a_subclassed_model_is_an_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(keras.layers.Flatten()(x))

    model = Net()
    model(np.zeros((1, *SHAPE), np.float32))
    with pytest.raises(InvalidInput, match="'subclassed' is not a functional Keras model"):
        find_prunable(model)


def test_extraction_checks_the_gate_values(resnet20):
    plan = find_prunable(resnet20)
    gates = {name: np.ones(width) for name, width in plan.gate_widths.items()}
    del gates[plan.groups[0].gate]
    with pytest.raises(InvalidInput, match=f"no value for gate '{plan.groups[0].gate}'"):
        extract_student(resnet20, plan, gates)
    gates[plan.groups[0].gate] = np.ones(3)
    with pytest.raises(InvalidInput, match="has 3 values, expected 16"):
        extract_student(resnet20, plan, gates)


def test_unit_costs_average_one_and_weigh_channels_against_branches(resnet20):
    plan = find_prunable(resnet20)
    first_branch, first_group = plan.branches[0].gate, plan.groups[0].gate
    units = unit_costs(resnet20, plan, "units")
    np.testing.assert_array_equal(np.concatenate(list(units.values())), np.ones(345))
    macs = unit_costs(resnet20, plan, "macs")
    assert np.concatenate(list(macs.values())).mean() == pytest.approx(1.0)
    # stage 1, block 1: two 3x3 16->16 convolutions at 32x32; a channel of the first saves its filter (147,456
    # MACs) and the second's weights reading it (147,456); the branch saves one channel's worth beyond that
    assert macs[first_group][0] == macs[first_branch][0]
    # stage 2, block 1: a channel of its strided 16->32 convolution (16x16 out) and of the 32->32 one reading it
    stage2 = 3 * 3 * 16 * 16 * 16 + 3 * 3 * 32 * 16 * 16
    assert macs[plan.groups[3].gate][0] / macs[first_group][0] == pytest.approx(stage2 / 294_912)
    assert layer_macs(resnet20.get_layer("stage1_block1_a_conv")) == 2_359_296
    layers = weighted_layer_names(resnet20, plan)
    assert layers[:2] == ["stage1_block1_a_conv", "stage1_block1_b_conv"] and "stem_conv" not in layers
    latency = unit_costs(resnet20, plan, "latency", {name: 2.0 for name in layers})
    assert latency[first_group][0] == latency[first_branch][0]
    assert latency[plan.groups[3].gate][0] / latency[first_group][0] == pytest.approx(0.5)  # 2 / 32 + 2 / 32
    with pytest.raises(InvalidInput, match="no latency for layer\\(s\\) stage1_block1_a_conv"):
        unit_costs(resnet20, plan, "latency", {name: 1.0 for name in layers[1:]})
    with pytest.raises(InvalidInput, match="unknown cost 'flops'; choose one of latency, macs, units"):
        unit_costs(resnet20, plan, "flops")


def test_a_layer_micro_model_computes_the_teachers_layer_with_what_tflite_fuses_into_it(resnet20):
    from akd_tf.layer_models import layer_model, layer_network

    micro = layer_model(resnet20, "stage2_block1_a_conv")
    assert [type(layer).__name__ for layer in micro.layers] == ["InputLayer", "Conv2D", "BatchNormalization", "ReLU"]
    inner = keras.Model(resnet20.input, [resnet20.get_layer("stage1_block3_out").output,
                                         resnet20.get_layer("stage2_block1_a_relu").output])
    features, expected = inner(_images())
    np.testing.assert_allclose(micro(features).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    last = layer_model(resnet20, "stage1_block1_b_conv")  # its batch norm feeds the Add: fused, the Add is not
    assert [type(layer).__name__ for layer in last.layers][1:] == ["Conv2D", "BatchNormalization"]
    network = layer_network("ab" * 32, micro)
    assert network.space_name == "teacher-layer" and network.key.startswith("abababababab:stage2_block1_a_conv:")
    assert network.macs == 3 * 3 * 16 * 32 * 16 * 16 and network.params == micro.count_params()
    with pytest.raises(InvalidInput, match="layer 'stage1_block1_add' \\(Add\\) is not a Conv2D"):
        layer_model(resnet20, "stage1_block1_add")
