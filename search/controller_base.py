"""The controller interface: what proposes the next architectures and learns from their rewards.

A controller is driven one step at a time by the search loop::

    controller = make_controller("ppo", space, seed=0)
    proposals = controller.propose(step, n)        # n archs, each a Proposal
    controller.update(step, tokens, rewards)       # the finished batch, rewards roughly in [0, 1]
    state = controller.state_bytes()               # stored with the next batch

``propose`` is a pure function of (state, seed, step): it never changes the
controller, so a resumed search that reloads the state saved after the last
update proposes the same batch again. ``update`` accepts any subset of the
proposed archs, in any order. A state only loads into a controller of the same
name, space and seed (anything else raises ``ValueError``).

This module holds the base class and what its implementations share; the
implementations live in :mod:`search.baselines` and :mod:`search.ppo`, their
options in :mod:`search.controller_settings`, and the registry that names
them in :mod:`search.controller`. No TensorFlow import here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from akd_tf.errors import InvalidInput
from akd_tf.space import SearchSpace
from search.checks import check_int, check_reward
from search.controller_settings import stored_options

STATE_FORMAT = 1


@dataclass(frozen=True)
class Proposal:
    """One proposed architecture: its tokens, for a sampling policy their total log-probability (nats), and
    what the controller has to say about it, if anything (the search loop says it)."""

    tokens: tuple[int, ...]
    log_prob: float | None = None
    note: str | None = None


class Controller(ABC):
    """Proposes architectures of ``space`` and learns from their rewards (contract in the module docstring)."""

    name: str
    # True: proposing a step's children need not wait for the update of the step before (random search learns
    # nothing; aging evolution is asynchronous by definition; PPO learns a batch proposed by earlier weights
    # against those weights' probabilities). The search then proposes step s + 1 while the
    # last children of step s still train, when a worker would otherwise wait (a policy lag of one step).
    asynchronous = False

    def __init__(self, space: SearchSpace, seed: int):
        self.space = space
        self.seed = check_int("seed", seed, 0)

    @abstractmethod
    def propose(self, step: int, n: int) -> list[Proposal]:
        """``n`` archs for controller step ``step``; the same (state, seed, step) gives the same list."""

    @abstractmethod
    def update(self, step: int, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict:
        """Learn from the finished batch of ``step``; returns JSON-safe stats for the log."""

    @abstractmethod
    def state_bytes(self) -> bytes:
        """Everything needed to continue the search from here."""

    @abstractmethod
    def load_state_bytes(self, data: bytes) -> None:
        """Restore a state from :meth:`state_bytes`; ``ValueError`` when it belongs to another controller."""

    def remember_proposed(self, step: int, tokens: Sequence[Sequence[int]]) -> None:
        """Take note that ``tokens`` (this controller's proposals, or those it made before a stop) are step
        ``step`` of the search: the search calls it with every step it stores, and on resume with the steps
        stored after the state it restored was saved. Nothing by default; a controller whose proposals avoid
        what it proposed before keeps them (:meth:`propose` itself changes no state)."""

    def rng(self, step: int) -> np.random.Generator:
        """The random generator of ``step``: a function of (seed, step) only."""
        return np.random.default_rng([self.seed, check_int("step", step, 0)])

    def state_header(self) -> dict:
        """What a state must match to load here: format, controller, space and seed."""
        return {"format": STATE_FORMAT, "controller": self.name, "space": self.space.name, "seed": self.seed}

    def check_state_header(self, header: dict) -> None:
        """``ValueError`` naming the first field where ``header`` differs from this controller's."""
        if not isinstance(header, dict):
            raise InvalidInput(f"controller state header must be a JSON object, got {type(header).__name__}")
        expected = self.state_header()
        for key, value in expected.items():
            if header.get(key) != value:
                raise InvalidInput(f"controller state has {key} {header.get(key)!r}, expected {value!r}")

    @staticmethod
    def check_state_settings(stored, settings) -> None:
        """``ValueError`` unless a state's ``stored`` settings are ``settings`` (options added since the state was
        written count as what it was trained with: :func:`search.controller_settings.stored_options`)."""
        expected = asdict(settings)
        if not isinstance(stored, dict) or stored_options(type(settings), stored) != expected:
            raise InvalidInput(f"controller state has settings {stored!r}, expected {expected!r}")

    def check_batch(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The batch as (int32 tokens (n, decisions), float64 rewards (n,)), sorted by tokens.

        The canonical order makes ``update`` independent of the order the loop
        passes results in. ``ValueError`` for invalid tokens, non-finite
        rewards or unequal lengths.
        """
        rows = [self.space.from_tokens(t).tokens for t in tokens]
        values = list(rewards)
        if len(rows) != len(values):
            raise InvalidInput(f"got {len(rows)} token lists but {len(values)} rewards")
        values = [check_reward(r) for r in values]
        order = sorted(range(len(rows)), key=lambda i: (rows[i], values[i]))
        return (np.array([rows[i] for i in order], dtype=np.int32).reshape(len(rows), self.space.num_decisions),
                np.array([values[i] for i in order], dtype=np.float64))


def reward_stats(rewards: np.ndarray) -> dict:
    """Batch size, mean and best reward (``None`` for an empty batch)."""
    if not len(rewards):
        return {"n": 0, "mean_reward": None, "max_reward": None}
    return {"n": int(len(rewards)), "mean_reward": float(rewards.mean()), "max_reward": float(rewards.max())}


def json_state(data: bytes) -> dict:
    """A JSON-object state as written by ``state_bytes``; ``ValueError`` for anything else."""
    try:
        state = json.loads(bytes(data).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise InvalidInput(f"controller state is not the JSON this controller writes: {exc}") from None
    if not isinstance(state, dict):
        raise InvalidInput(f"controller state must be a JSON object, got {type(state).__name__}")
    return state
