"""Canonical forms (akd_tf.canonical): which architectures are the same network, and how many networks a space has.

Small spaces are checked against brute force over every token list; the mnasnet space by its exact count
and by building Keras models and TFLite files of architectures with equal and with different canonical forms.
"""

import itertools

import numpy as np
import pytest
import tf_keras as keras

from akd_tf.canonical import canonical_arch, count_networks, network_key
from akd_tf.plan import plan_network
from akd_tf.space import BlockOptions, BlockSkeleton, ConvOp, SearchSpace

DWCONV, MBCONV3 = ConvOp("dwconv", "dwconv"), ConvOp("mbconv3", "mbconv", 3)
# Three stride-1 blocks that may be removed, with channel divisor 8: width 1.1 rounds to the same channels as
# width 1 (16 and 24), and whether block 2's first layer can have a residual depends on what reaches it (16
# channels from the stem or block 1, or 24 from block 1). Block 3 has its own, smaller options.
QUIRKS = SearchSpace(
    name="quirks", stem_filters=16, head_filters=32, channel_divisor=8,
    skeleton=(BlockSkeleton(1, 16, 1), BlockSkeleton(1, 24, 1), BlockSkeleton(1, 24, 1)),
    block_options=(*[BlockOptions(conv_ops=(DWCONV, MBCONV3), kernels=(3,), se_ratios=(0.0,),
                                  skip_ops=("noskip", "id"), width_multipliers=(1.0, 1.1, 1.5),
                                  layer_deltas=(-1, 0, 1))] * 2,
                   BlockOptions(conv_ops=(DWCONV,), kernels=(3, 5), se_ratios=(0.0,), skip_ops=("noskip", "id"),
                                width_multipliers=(1.0, 1.5), layer_deltas=(-1, 0))))


def every_arch(space):
    return [space.from_tokens(t) for t in itertools.product(*(range(d.size) for d in space.decisions))]


def networks_by_brute_force(space, input_shape):
    """Operators of the plan (the walk) -> every architecture that has them."""
    groups = {}
    for arch in every_arch(space):
        groups.setdefault(plan_network(arch, input_shape, 10).operators, []).append(arch)
    return groups


@pytest.mark.parametrize("space_name", ["quirks", "lut-test"])
def test_canonical_forms_and_the_count_agree_with_brute_force_over_every_token_list(space_name, tiny_space):
    space = QUIRKS if space_name == "quirks" else tiny_space
    partitions = []
    for shape in ((32, 32, 3), (64, 48, 1)):  # the same networks whatever the input
        groups = networks_by_brute_force(space, shape)
        assert count_networks(space) == len(groups)
        for members in groups.values():
            least = min(members, key=lambda a: a.tokens)
            assert {canonical_arch(a) for a in members} == {least}  # one form per network: its least tokens
        partitions.append(sorted(sorted(a.tokens for a in members) for members in groups.values()))
    assert partitions[0] == partitions[1]
    assert (space.size, count_networks(space)) == {"quirks": (36 * 36 * 16, 1431), "lut-test": (64, 48)}[space_name]


def test_the_quirks_count_by_hand():
    # Block 1 from the stem's 16 channels: removed (hands on 16); 16 channels (w1 and w1.1 alike) with a
    # residual possible, 2 ops x 2 skips for 1 or 2 layers = 8 (16); 24 channels, 2 ops for 1 layer + 4 for 2
    # = 6 (24). So 9 networks reach block 2 with 16 channels, 6 with 24.
    # Block 2 from 16: removed 1 (16), 24 channels 6 (24), 40 channels 6 (40); from 24: removed 1 (24), 24
    # channels 8 (24), 40 channels 6 (40). So 9 networks hand on 16, 9*6 + 6*9 = 108 hand on 24, 9*6 + 6*6 = 90
    # hand on 40.
    # Block 3 (one dwconv layer of kernel 3 or 5, or none): from 16, 1 + 2 + 2 = 5; from 24 or 40, 1 + 4 + 2 = 7.
    assert count_networks(QUIRKS) == 9 * 5 + 108 * 7 + 90 * 7 == 1431


def test_the_mnasnet_space_holds_exactly_this_many_networks(space):
    # Per block, the distinct stages from its input: a stride-1 block that may be removed (1 and 7, whose
    # first layer always changes the channels) has 1 (removed) + 48 (one layer: the skip op decides nothing)
    # + 96 (two layers) = 145; a stride-2 block with 1..3 layers (2) 48 + 96 + 96 = 240; with 2..4 or 3..5
    # layers (3, 4, 6) 3 x 96 = 288; block 5 (stride 1, 1..3 layers, channels always change) 240.
    assert count_networks(space) == 145 * 240 * 288 * 288 * 240 * 288 * 145 == 28_929_168_506_880_000
    assert space.size == 288 ** 7 == 164_341_563_462_254_592


def test_decisions_that_build_nothing_take_their_least_value(space):
    arch = space.parse("mbconv6_k5_se0.25_id_w1.25_n0:mbconv3_k5_se0.25_id_w1_n1:mbconv3_k5_se0_id_w1_n2:"
                       "conv_k5_se0.25_id_w0.75_n3:dwconv_k5_se0_id_w1.25_n1:mbconv6_k3_se0_noskip_w1_n2:"
                       "conv_k5_se0.25_id_w1.25_n1")
    assert network_key(arch) == (
        "conv_k3_se0_noskip_w0.75_n0:"  # removed: every decision but the layer count at its first value
        "mbconv3_k5_se0.25_noskip_w1_n1:"  # one stride-2 layer: no residual, whatever the skip op
        "mbconv3_k5_se0_id_w1_n2:"  # the second layer has one
        "conv_k5_se0.25_id_w0.75_n3:"
        "dwconv_k5_se0_noskip_w1.25_n1:"  # stride 1, but 80 -> 140 channels: no residual
        "mbconv6_k3_se0_noskip_w1_n2:"
        "conv_k5_se0.25_noskip_w1.25_n1")  # 160 -> 400 channels
    canonical = canonical_arch(arch)
    assert canonical_arch(canonical) == canonical
    assert plan_network(canonical, (32, 32, 3), 10).operators == plan_network(arch, (32, 32, 3), 10).operators
    for a in space.sample_many(200, seed=5):
        assert canonical_arch(canonical_arch(a)) == canonical_arch(a) and canonical_arch(a).tokens <= a.tokens


def twin(arch, rng):
    """Another architecture with every decision that changes nothing drawn anew (checked: the same network)."""
    space, tokens = arch.space, list(arch.tokens)
    key = network_key(arch)
    for i, decision in enumerate(space.decisions):
        idle = [v for v in range(decision.size)
                if network_key(space.from_tokens(tokens[:i] + [v] + tokens[i + 1:])) == key]
        tokens[i] = int(rng.choice(idle))
    other = space.from_tokens(tokens)
    assert network_key(other) == key
    return other


def sibling(arch, rng):
    """An architecture one decision away that is another network."""
    space = arch.space
    for i in rng.permutation(space.num_decisions):
        for v in range(space.decisions[i].size):
            other = space.from_tokens(arch.tokens[:i] + (v,) + arch.tokens[i + 1:])
            if network_key(other) != network_key(arch):
                return other
    raise AssertionError(f"every decision of {arch} changes nothing")


def keras_structure(arch):
    keras.backend.clear_session()
    from akd_tf.models import build_student

    model = build_student(arch, (32, 32, 3), 10)
    return ([(type(layer).__name__, layer.get_config()) for layer in model.layers],
            [(w.name, tuple(w.shape)) for w in model.weights])


def test_the_same_canonical_form_builds_the_same_keras_model_and_another_one_another(space):
    rng = np.random.default_rng(0)
    for arch in space.sample_many(3, seed=21):
        double, other = twin(arch, rng), sibling(arch, rng)
        assert double.tokens != arch.tokens  # every arch here has idle decisions (a skip op, a removed block)
        assert keras_structure(double) == keras_structure(arch)
        layers, weights = keras_structure(other)
        assert (layers, weights) != keras_structure(arch)


def tflite_operators(arch):
    from akd_tf import export
    from akd_tf.interpreter import make_interpreter

    keras.backend.clear_session()
    interpreter = make_interpreter(export.convert(export.build_for_export(arch, (32, 32, 3), 10)))
    shapes = {t["index"]: tuple(t["shape"]) for t in interpreter.get_tensor_details()}
    return [(op["op_name"], [shapes.get(i) for i in op["inputs"]], [shapes[i] for i in op["outputs"]])
            for op in interpreter._get_ops_details()]


def test_the_same_canonical_form_converts_to_the_same_tflite_operators(space):
    rng = np.random.default_rng(1)
    arch = space.sample_many(1, seed=0)[0]  # block 1 and block 7 removed, block 5 one layer wide
    operators = tflite_operators(arch)
    assert tflite_operators(twin(arch, rng)) == operators
    assert tflite_operators(sibling(arch, rng)) != operators
    assert {name for name, _, _ in operators} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"}
