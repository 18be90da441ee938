import pytest

from akd_tf.plan import plan_network
from latency_db.keys import enumerate_operators


@pytest.fixture(scope="module")
def operators(space):
    return enumerate_operators(space, (96, 96, 3), 10)


def test_key_count_and_order(operators):
    keys = [op.key for op in operators]
    assert len(keys) == len(set(keys)) == 1639
    assert keys[0] == "stem-input:96x96x3-output:32-kernel:3-stride:2"
    assert all(k.startswith("head-input:") for k in keys[-6:])  # block 6 or 7 widths feed the head
    assert sum(k.startswith("head-") for k in keys) == 6


def test_every_operator_of_sampled_archs_has_a_key(space, operators):
    keys = {op.key for op in operators}
    for arch in space.sample_many(300, seed=9):
        for op in plan_network(arch, (96, 96, 3), 10).operators:
            assert op.key in keys, (arch.to_string(), op.key)


def test_key_format_names_everything_that_sets_the_cost(space):
    arch = space.parse("mbconv6_k5_se0.25_id_w1_n1:mbconv3_k3_se0_id_w1_n2:dwconv_k3_se0.25_id_w1_n2:"
                       "conv_k3_se0.25_id_w1_n3:mbconv6_k3_se0_id_w1_n1:mbconv6_k3_se0_id_w1_n2:"
                       "dwconv_k3_se0_id_w1_n1")
    plan = plan_network(arch, (96, 96, 3), 10)
    assert [op.key for op in plan.operators[:4]] == [
        "stem-input:96x96x3-output:32-kernel:3-stride:2",
        "mbconv6-input:48x48x32-output:16-kernel:5-stride:1-se:0.25-noskip",
        "mbconv3-input:48x48x16-output:24-kernel:3-stride:2-se:0-noskip",
        "mbconv3-input:24x24x24-output:24-kernel:3-stride:1-se:0-idskip",
    ]
    assert plan.operators[-1].key == "head-input:3x3x320-output:1280-classes:10"


def test_keys_depend_on_resolution_and_classes(space):
    small = {op.key for op in enumerate_operators(space, (32, 32, 3), 10)}
    large = {op.key for op in enumerate_operators(space, (32, 32, 3), 100)}
    assert len(small) == len(large) == 1639
    assert small - large == {k for k in small if k.startswith("head-")}
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 0"):
        enumerate_operators(space, (32, 32, 3), 0)
