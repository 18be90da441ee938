"""The reward registry: MnasNet's soft and hard forms, the MACs form and plain accuracy."""

from __future__ import annotations

import pytest

from search.rewards import REWARDS, compute_reward, get_reward


def test_the_registry_holds_the_four_rewards():
    assert list(REWARDS) == ["mnas-soft", "mnas-hard", "flops", "accuracy"]


@pytest.mark.parametrize("latency_ms, expected", [(10.0, 0.8), (20.0, 0.8 * 2 ** -0.07), (5.0, 0.8 * 0.5 ** -0.07)])
def test_mnas_soft_is_accuracy_times_latency_ratio_to_the_minus_0_07(latency_ms, expected):
    terms = compute_reward("mnas-soft", 0.8, latency_ms=latency_ms, target_ms=10.0)
    assert terms["reward"] == pytest.approx(expected, rel=1e-12)
    assert (terms["exponent"], terms["ratio"]) == (-0.07, latency_ms / 10.0)


@pytest.mark.parametrize("latency_ms, expected, exponent", [(8.0, 0.8, 0.0), (10.0, 0.8, 0.0), (20.0, 0.4, -1.0)])
def test_mnas_hard_keeps_accuracy_within_target_and_divides_by_the_ratio_beyond(latency_ms, expected, exponent):
    terms = compute_reward("mnas-hard", 0.8, latency_ms=latency_ms, target_ms=10.0)
    assert terms["reward"] == pytest.approx(expected, rel=1e-12) and terms["exponent"] == exponent


def test_flops_weighs_macs_against_their_target_and_accuracy_has_no_cost():
    terms = compute_reward("flops", 0.5, mmacs=600.0, target_mmacs=300.0, latency_ms=99.0)
    assert terms["reward"] == pytest.approx(0.5 * 2 ** -0.07, rel=1e-12) and terms["cost"] == "mmacs"
    plain = compute_reward("accuracy", 0.7)
    assert (plain["reward"], plain["cost_term"], plain["cost"]) == (0.7, 1.0, None)


@pytest.mark.parametrize("name, kwargs, message", [
    ("mnas-soft", {"latency_ms": 5.0}, "target_ms must be a positive number, got None"),
    ("mnas-soft", {"target_ms": 5.0}, "latency_ms must be a positive number, got None"),
    ("flops", {"mmacs": 5.0, "target_mmacs": 0}, "target_mmacs must be a positive number, got 0"),
    ("mnas-hard", {"latency_ms": float("nan"), "target_ms": 1.0}, "latency_ms must be a positive number, got nan"),
])
def test_missing_or_bad_costs_are_named(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_reward(name, 0.5, **kwargs)


def test_bad_names_and_accuracies_are_named():
    with pytest.raises(ValueError, match="unknown reward 'mnas'; known: mnas-soft, mnas-hard, flops, accuracy"):
        get_reward("mnas")
    with pytest.raises(ValueError, match=r"accuracy must be in \[0, 1\], got 1.5"):
        compute_reward("accuracy", 1.5)
