import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akd_tf.space import (BlockOptions, BlockSkeleton, ConvOp, SearchSpace, get_space, make_divisible,
                          register_space, space_names)

ARCH0 = ("mbconv6_k5_se0.25_noskip_w0.75_n0:conv_k3_se0_id_w1_n3:mbconv3_k5_se0.25_id_w1_n3:"
         "mbconv3_k5_se0_id_w1.25_n3:dwconv_k5_se0.25_noskip_w1.25_n3:mbconv6_k3_se0_id_w0.75_n3:"
         "conv_k3_se0_noskip_w1_n0")
TOKENS0 = (3, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 1, 1, 1, 1, 1, 2, 1, 0, 1, 2, 0, 1, 1, 1, 0, 2, 2,
           3, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0)


def tokens_strategy(space):
    return st.tuples(*[st.integers(0, d.size - 1) for d in space.decisions])


def test_layout_is_derived_from_the_data(space):
    assert space.num_blocks == 7
    assert space.num_decisions == 42  # 7 blocks x (op, kernel, se, skip, width, layers)
    assert space.onehot_width == 112  # 7 x (4 + 2 + 2 + 2 + 3 + 3); the paper's space has 77
    assert space.size == (4 * 2 * 2 * 2 * 3 * 3) ** 7
    assert [d.field for d in space.block_decisions(1)] == ["conv_op", "kernel", "se_ratio", "skip_op", "width",
                                                           "layers"]
    assert space.block_decisions(4)[-1].values == (3, 4, 5)  # base 4 layers, -1/0/+1
    assert space.block_decisions(1)[-1].labels == ("n0", "n1", "n2")


def test_seeded_sample_is_pinned(space):
    arch = space.sample_many(1, seed=0)[0]
    assert arch.to_string() == ARCH0
    assert arch.tokens == TOKENS0


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_three_forms_round_trip(space, data):
    tokens = data.draw(tokens_strategy(space))
    arch = space.from_tokens(tokens)
    assert arch.tokens == tokens
    assert space.parse(arch.to_string()) == arch
    onehot = arch.onehot()
    assert onehot.shape == (112,) and onehot.sum() == 42
    assert space.from_onehot(onehot) == arch
    assert space.from_onehot(onehot.astype(int).tolist()) == arch


def test_sampling_is_seeded_and_uniform(space):
    a = space.sample_many(50, seed=7)
    assert a == space.sample_many(50, seed=7)
    assert a != space.sample_many(50, seed=8)
    counts = np.sum([arch.onehot() for arch in space.sample_many(2000, seed=1)], axis=0)
    first = counts[:4]  # block 1 conv op: 4 choices, 500 expected each
    assert first.min() > 420 and first.max() < 580


def test_mutation_changes_exactly_one_decision(space):
    rng = np.random.default_rng(0)
    arch = space.sample_many(1, seed=3)[0]
    for _ in range(200):
        child = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.tokens, child.tokens)) == 1
        arch = child


@pytest.mark.parametrize("text, message", [
    (ARCH0.rsplit(":", 1)[0],
     "space 'mnasnet': expected 7 blocks separated by ':', got 6 in '" + ARCH0.rsplit(":", 1)[0] + "'"),
    (ARCH0.replace("mbconv6", "mbconv9", 1),
     "block 1 conv_op: got 'mbconv9', expected one of conv, dwconv, mbconv3, mbconv6"),
    (ARCH0.replace("_k3", "_k7", 1), "block 2 kernel: got 'k7', expected one of k3, k5"),
    (ARCH0.replace("_se0.25", "_se.25", 1), "block 1 se_ratio: got 'se.25', expected one of se0, se0.25"),
    (ARCH0.replace("_n3", "_n6", 1), "block 2 layers: got 'n6', expected one of n1, n2, n3"),
    (ARCH0.replace("_w0.75", "", 1),
     "block 1: expected 6 fields <conv_op>_<kernel>_<se_ratio>_<skip_op>_<width>_<layers>, got 5 in "
     "'mbconv6_k5_se0.25_noskip_n0'"),
])
def test_bad_strings_name_block_field_value_and_choices(space, text, message):
    with pytest.raises(ValueError) as err:
        space.parse(text)
    assert str(err.value) == message


@pytest.mark.parametrize("tokens, message", [
    (TOKENS0[:-1], "space 'mnasnet': expected 42 tokens (7 blocks x 6 decisions), got 41"),
    (TOKENS0[:5] + (9,) + TOKENS0[6:], "block 1 layers: got token 9, expected 0..2 (n0, n1, n2)"),
    (TOKENS0[:7] + (-1,) + TOKENS0[8:], "block 2 kernel: got token -1, expected 0..1 (k3, k5)"),
    (TOKENS0[:1] + ("1",) + TOKENS0[2:], "block 1 kernel: got token '1', expected an int in 0..1"),
])
def test_bad_tokens_are_rejected(space, tokens, message):
    with pytest.raises(ValueError) as err:
        space.from_tokens(tokens)
    assert str(err.value) == message


def test_bad_onehot_is_rejected(space):
    vec = space.parse(ARCH0).onehot()
    vec[0] = 1.0  # block 1 now has two conv ops switched on
    with pytest.raises(ValueError,
                       match=r"^block 1 conv_op: segment \[1.0, 0.0, 0.0, 1.0\] at offset 0 is not one-hot"):
        space.from_onehot(vec)
    with pytest.raises(ValueError, match="expected a one-hot vector of width 112, got shape \\(111,\\)"):
        space.from_onehot(vec[:-1])


def test_registry_lists_known_names_and_accepts_new_spaces():
    with pytest.raises(ValueError) as err:
        get_space("nope")
    assert str(err.value).startswith("unknown search space 'nope'; known spaces: ")
    assert "mnasnet" in str(err.value)
    tiny = SearchSpace(
        name="tiny-test", stem_filters=8, head_filters=32,
        skeleton=(BlockSkeleton(stride=2, filters=16, layers=1), BlockSkeleton(stride=1, filters=24, layers=2)),
        block_options=(BlockOptions(conv_ops=(ConvOp("mbconv2", "mbconv", 2),), kernels=(3,), se_ratios=(0.0,),
                                    skip_ops=("id",), width_multipliers=(1.0,), layer_deltas=(0, 1)),))
    register_space(tiny)
    assert get_space("tiny-test") is tiny and "tiny-test" in space_names()
    assert tiny.size == 4 and tiny.onehot_width == 2 * 7
    assert tiny.parse("mbconv2_k3_se0_id_w1_n2:mbconv2_k3_se0_id_w1_n3").tokens == (0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="already registered"):
        register_space(tiny)


def test_space_definition_is_validated():
    opts = BlockOptions(conv_ops=(ConvOp("dw", "dwconv"),), kernels=(3,), se_ratios=(0.0,), skip_ops=("id",),
                        width_multipliers=(1.0,), layer_deltas=(-1, 0))
    with pytest.raises(ValueError, match="block 1 has stride 2 and so needs at least one layer, but allows 0"):
        SearchSpace("bad", 8, 16, (BlockSkeleton(2, 16, 1),), (opts,))
    with pytest.raises(ValueError, match="kind 'sep' is not one of"):
        ConvOp("x", "sep")


def test_make_divisible_keeps_width_choices_distinct(space):
    assert [make_divisible(16 * m, 4) for m in (0.75, 1.0, 1.25)] == [12, 16, 20]
    assert [make_divisible(320 * m, 4) for m in (0.75, 1.0, 1.25)] == [240, 320, 400]
    for b in range(1, 8):
        widths = [make_divisible(space.skeleton[b - 1].filters * m, space.channel_divisor)
                  for m in space.block_decisions(b)[4].values]
        assert len(set(widths)) == 3


def test_summary_and_skeleton_rows_describe_the_space(space):
    assert space.summary() == {"space": "mnasnet", "version": "18b5252c", "blocks": 7, "decisions": 42,
                               "onehot_width": 112, "size": 288 ** 7, "stem_filters": space.stem_filters,
                               "head_filters": space.head_filters, "resolution": [32, 224]}
    rows = space.skeleton_rows()
    assert len(rows) == 7
    assert rows[0] == {"block": 1, "stride": 1, "filters": 16, "base layers": 1,
                       "conv_op": "conv dwconv mbconv3 mbconv6", "kernel": "k3 k5", "se_ratio": "se0 se0.25",
                       "skip_op": "noskip id", "width": "w0.75 w1 w1.25", "layers": "n0 n1 n2"}


def test_version_is_a_digest_of_the_definition_that_any_edit_changes(space):
    from dataclasses import replace

    from akd_tf.space import BlockSkeleton, ConvOp

    assert space.version == "18b5252c"  # the mnasnet space as defined today; an edit must change this line
    assert replace(space, name="renamed").version == space.version  # the name is not part of the definition
    options = space.block_options[0]
    edits = [replace(space, head_filters=1024), replace(space, max_resolution=192),
             replace(space, skeleton=(BlockSkeleton(1, 16, 2), *space.skeleton[1:])),
             replace(space, block_options=(replace(options, kernels=(3, 5, 7)),)),
             replace(space, block_options=(replace(options, conv_ops=(
                 *options.conv_ops[:3], ConvOp("mbconv6", "mbconv", 4))),))]  # same label, other expand ratio
    versions = [edited.version for edited in edits]
    assert len(set(versions)) == len(edits) and space.version not in versions
    assert all(len(v) == 8 and int(v, 16) >= 0 for v in versions)


def test_decode_text_reads_tokens_in_both_typed_forms(space):
    arch = space.parse(ARCH0)
    assert space.decode_text(",".join(map(str, TOKENS0))) == arch
    assert space.decode_text(" ".join(map(str, TOKENS0))) == arch
    assert space.decode_text("".join(str(int(v)) for v in arch.onehot())) == arch
    with pytest.raises(ValueError, match=r"^expected comma-separated ints, got 'a,b'$"):
        space.decode_text("a,b")
    with pytest.raises(ValueError, match=r"expected 42 tokens"):
        space.decode_text("1,2,3")
