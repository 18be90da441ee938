"""The one walk over a network (akd_tf.walk): the operators, their order and their shapes."""

import pytest

from akd_tf.operators import HeadPlan, LayerPlan, StemPlan
from akd_tf.plan import plan_network
from akd_tf.walk import BlockStage, block_stage, check_input_shape, check_num_classes, walk, walk_stages

# Block 1 removed (0 layers), residuals on and off, SE, a regular conv, widths 0.75 and 1.25.
ARCH = ("mbconv6_k5_se0.25_id_w1_n0:mbconv3_k3_se0_id_w1_n3:dwconv_k3_se0.25_noskip_w0.75_n2:"
        "conv_k5_se0_id_w1_n3:mbconv6_k3_se0.25_id_w1.25_n1:mbconv6_k3_se0_id_w1_n2:dwconv_k3_se0_id_w1_n1")


def describe(op):
    """(name, op, input shape, output shape, kernel, stride, expanded channels, SE channels, residual)."""
    if isinstance(op, StemPlan):
        return (op.name, "conv", op.input_shape, op.output_shape, op.kernel, op.stride, None, None, None)
    if isinstance(op, HeadPlan):
        return (op.name, "head", op.input_shape, (op.num_classes,), 1, 1, None, None, None)
    return (op.name, op.conv_op.name, op.input_shape, op.output_shape, op.kernel, op.stride, op.expanded_channels,
            op.se_channels, op.residual)


def test_walk_of_one_architecture_is_pinned(space):
    assert [describe(op) for op in walk(space.parse(ARCH), (32, 32, 3), 10)] == [
        ("stem", "conv", (32, 32, 3), (16, 16, 32), 3, 2, None, None, None),
        ("block2_layer1", "mbconv3", (16, 16, 32), (8, 8, 24), 3, 2, 96, 0, False),
        ("block2_layer2", "mbconv3", (8, 8, 24), (8, 8, 24), 3, 1, 72, 0, True),
        ("block2_layer3", "mbconv3", (8, 8, 24), (8, 8, 24), 3, 1, 72, 0, True),
        ("block3_layer1", "dwconv", (8, 8, 24), (4, 4, 32), 3, 2, 24, 6, False),
        ("block3_layer2", "dwconv", (4, 4, 32), (4, 4, 32), 3, 1, 32, 8, False),  # noskip
        ("block4_layer1", "conv", (4, 4, 32), (2, 2, 80), 5, 2, 80, 0, False),
        ("block4_layer2", "conv", (2, 2, 80), (2, 2, 80), 5, 1, 80, 0, True),
        ("block4_layer3", "conv", (2, 2, 80), (2, 2, 80), 5, 1, 80, 0, True),
        ("block5_layer1", "mbconv6", (2, 2, 80), (2, 2, 140), 3, 1, 480, 20, False),  # 80 -> 140 channels
        ("block6_layer1", "mbconv6", (2, 2, 140), (1, 1, 160), 3, 2, 840, 0, False),
        ("block6_layer2", "mbconv6", (1, 1, 160), (1, 1, 160), 3, 1, 960, 0, True),
        ("block7_layer1", "dwconv", (1, 1, 160), (1, 1, 320), 3, 1, 160, 0, False),
        ("head", "head", (1, 1, 320), (10,), 1, 1, None, None, None),
    ]


def test_the_plan_is_the_walk(space):
    for arch in space.sample_many(20, seed=4) + [space.parse(ARCH)]:
        assert plan_network(arch, (64, 48, 1), 7).operators == tuple(walk(arch, (64, 48, 1), 7))


def test_walk_checks_its_arguments_when_called(space):
    arch = space.parse(ARCH)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        walk(arch, (32, 32, 3), 1)  # not only on the first item
    with pytest.raises(ValueError, match="resolution must be an int in 32..224, got 16"):
        walk(arch, (16, 16, 3), 10)
    with pytest.raises(ValueError, match=r"input channels must be a positive int, got 0"):
        check_input_shape(space, (32, 32, 0))
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got True"):
        check_num_classes(True)


def test_a_removed_block_hands_its_input_on(space):
    block1 = space.parse(ARCH).blocks[0]
    stage = block_stage(block1, (16, 16, 32))
    assert (stage.layers, stage.output_shape) == ((), (16, 16, 32))


def test_walk_stages_over_several_options_per_block(space):
    """Each option meets each shape reaching its block (ascending); one head per shape leaving the last block."""
    arch = space.parse(ARCH)
    narrow, wide = (space.parse(ARCH.replace("w1.25", w)).blocks[4] for w in ("w0.75", "w1.25"))
    blocks = [(choice,) for choice in arch.blocks]
    blocks[4] = (wide, narrow)
    stages = list(walk_stages(space, (32, 32, 3), 10, blocks, block_stage))
    # stem, blocks 1-4, block 5 twice, block 6 for both shapes, block 7 once (both paths give 1x1x160), one head
    assert len(stages) == 1 + 4 + 2 + 2 + 1 + 1
    fifth = [s for s in stages if isinstance(s, BlockStage) and s.layers and s.layers[0].block == 5]
    assert [s.output_shape for s in fifth] == [(2, 2, 140), (2, 2, 84)]  # in the order the options were given
    sixth = [s for s in stages if isinstance(s, BlockStage) and s.layers and s.layers[0].block == 6]
    assert [s.input_shape for s in sixth] == [(2, 2, 84), (2, 2, 140)]  # ascending
    heads = [s for s in stages if isinstance(s, HeadPlan)]
    assert [h.input_shape for h in heads] == [(1, 1, 320)]  # both paths reach the same head
    with pytest.raises(ValueError, match="space 'mnasnet': expected options for 7 blocks, got 6"):
        list(walk_stages(space, (32, 32, 3), 10, blocks[:6], block_stage))


def test_layers_are_layer_plans(space):
    ops = list(walk(space.parse(ARCH), (32, 32, 3), 10))
    assert isinstance(ops[0], StemPlan) and isinstance(ops[-1], HeadPlan)
    assert all(isinstance(op, LayerPlan) for op in ops[1:-1])
