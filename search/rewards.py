"""Rewards: one registry of MnasNet-style accuracy/cost trade-offs.

Every reward is ``ACC * (COST / TARGET) ** w`` for a cost (latency in ms or
MACs in millions) and an exponent rule, or plain accuracy:

==============  =========  ==========================================================
name            cost       exponent w
==============  =========  ==========================================================
``mnas-soft``   latency    -0.07 always (MnasNet's soft constraint)
``mnas-hard``   latency    0 when LAT <= T, else -1 (MnasNet's hard constraint)
``flops``       MACs       -0.07 always, against ``target_mmacs`` (the paper's Table 8)
``accuracy``    none       no cost term: reward = accuracy
==============  =========  ==========================================================

:func:`compute_reward` returns every term as a dict, so a log shows why a
reward is what it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akd_tf.errors import InvalidInput

SOFT_EXPONENT = -0.07  # MnasNet's alpha = beta = -0.07
# The reward of a child whose failure is its architecture's fault (its training diverged): a legitimate low
# reward that the controller learns from. Infrastructure failures get none (search.failures).
FAILED_REWARD = 0.0


@dataclass(frozen=True)
class RewardSpec:
    """A reward: which cost it weighs (``latency_ms``, ``mmacs`` or none) and its exponents below/above target."""

    name: str
    cost: str | None
    exponent_within_target: float
    exponent_over_target: float
    description: str

    def exponent(self, ratio: float) -> float:
        return self.exponent_within_target if ratio <= 1.0 else self.exponent_over_target


REWARDS: dict[str, RewardSpec] = {spec.name: spec for spec in (
    RewardSpec("mnas-soft", "latency_ms", SOFT_EXPONENT, SOFT_EXPONENT,
               "ACC * (LAT/T)^-0.07: a soft latency trade-off (MnasNet)"),
    RewardSpec("mnas-hard", "latency_ms", 0.0, -1.0,
               "ACC when LAT <= T, else ACC * (LAT/T)^-1 (MnasNet's hard constraint)"),
    RewardSpec("flops", "mmacs", SOFT_EXPONENT, SOFT_EXPONENT,
               "ACC * (MACs/target)^-0.07: the same trade-off against multiply-accumulates"),
    RewardSpec("accuracy", None, 0.0, 0.0, "ACC: no cost term"),
)}
COST_TARGET_OPTION = {"latency_ms": "target_ms", "mmacs": "target_mmacs"}


def get_reward(name: str) -> RewardSpec:
    if name not in REWARDS:
        raise InvalidInput(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
    return REWARDS[name]


def _positive(label: str, value) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{label} must be a positive number, got {value!r}")
    return float(value)


def compute_reward(name: str, accuracy: float, *, latency_ms: float | None = None, mmacs: float | None = None,
                   target_ms: float | None = None, target_mmacs: float | None = None) -> dict:
    """``{reward, accuracy, cost, cost_value, target, ratio, exponent, cost_term}`` for one child.

    ``accuracy`` is in [0, 1]; the cost this reward weighs and its target must
    be given (the other cost may be omitted).
    """
    spec = get_reward(name)
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0.0 <= accuracy <= 1.0:
        raise InvalidInput(f"accuracy must be in [0, 1], got {accuracy!r}")
    terms = {"reward_name": spec.name, "accuracy": float(accuracy), "cost": spec.cost}
    if spec.cost is None:
        return {**terms, "cost_value": None, "target": None, "ratio": None, "exponent": 0.0, "cost_term": 1.0,
                "reward": float(accuracy)}
    value, target = ((latency_ms, target_ms) if spec.cost == "latency_ms" else (mmacs, target_mmacs))
    value = _positive(spec.cost, value)
    target = _positive(COST_TARGET_OPTION[spec.cost], target)
    ratio = value / target
    exponent = spec.exponent(ratio)
    cost_term = ratio ** exponent
    return {**terms, "cost_value": value, "target": target, "ratio": ratio, "exponent": exponent,
            "cost_term": cost_term, "reward": float(accuracy) * cost_term}
