"""Search controllers: what proposes the next architectures and learns from their rewards.

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

Registered controllers (:data:`CONTROLLERS`):

==============  ==============================================================
``ppo``         LSTM actor-critic trained with PPO (MnasNet; :mod:`search.ppo`)
``evolution``   regularized (aging) evolution with tournament selection
``random``      uniform samples of the space; learns nothing
==============  ==============================================================

Options are the fields of each controller's settings dataclass (no
TensorFlow import here: :mod:`search.ppo` is imported only when a PPO
controller is made).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Callable, Sequence

import numpy as np

from akd_tf.space import SearchSpace
from search.checks import check_int, check_number, check_reward

STATE_FORMAT = 1


@dataclass(frozen=True)
class Proposal:
    """One proposed architecture: its tokens and, for a sampling policy, their total log-probability (nats)."""

    tokens: tuple[int, ...]
    log_prob: float | None = None


# ---------------------------------------------------------------------------
# Settings (the options of make_controller)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomSettings:
    """The random controller has no options."""


@dataclass(frozen=True)
class EvolutionSettings:
    """Regularized evolution: the ``population_size`` youngest results; parents are the best of ``tournament_size``."""

    population_size: int = 16
    tournament_size: int = 4

    def __post_init__(self) -> None:
        check_int("population_size", self.population_size, 1)
        check_int("tournament_size", self.tournament_size, 1)
        if self.tournament_size > self.population_size:
            raise ValueError(f"tournament_size must be <= population_size={self.population_size}, "
                             f"got {self.tournament_size}")


@dataclass(frozen=True)
class PPOSettings:
    """PPO controller: LSTM width, Adam learning rate, loss weights, clip range and gradient epochs per update.

    Tuned on the surrogate reward of benchmarks/controller_vs_random.py
    (batch 8, 2,000 samples): learning rates 0.001-0.01 and entropy weights
    0.01-0.1 on seeds 0-2, the best few again on seeds 10-14. Faster learning
    or less entropy collapses early onto worse archs (0.005 and 0.01: best
    reward 1.05 against 1.12); 32 or 128 hidden units and 2 or 8 epochs did
    no better than 64 and 4.
    """

    hidden_units: int = 64
    learning_rate: float = 0.002
    entropy_weight: float = 0.05
    value_weight: float = 0.5
    clip_ratio: float = 0.2
    epochs: int = 4

    def __post_init__(self) -> None:
        check_int("hidden_units", self.hidden_units, 1)
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("entropy_weight", self.entropy_weight, 0.0)
        check_number("value_weight", self.value_weight, 0.0)
        check_number("clip_ratio", self.clip_ratio, 0.0, 1.0, low_open=True)
        check_int("epochs", self.epochs, 1)


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------


class Controller(ABC):
    """Proposes architectures of ``space`` and learns from their rewards (contract in the module docstring)."""

    name: str

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

    def rng(self, step: int) -> np.random.Generator:
        """The random generator of ``step``: a function of (seed, step) only."""
        return np.random.default_rng([self.seed, check_int("step", step, 0)])

    def state_header(self) -> dict:
        """What a state must match to load here: format, controller, space and seed."""
        return {"format": STATE_FORMAT, "controller": self.name, "space": self.space.name, "seed": self.seed}

    def check_state_header(self, header: dict) -> None:
        """``ValueError`` naming the first field where ``header`` differs from this controller's."""
        if not isinstance(header, dict):
            raise ValueError(f"controller state header must be a JSON object, got {type(header).__name__}")
        expected = self.state_header()
        for key, value in expected.items():
            if header.get(key) != value:
                raise ValueError(f"controller state has {key} {header.get(key)!r}, expected {value!r}")

    def check_batch(self, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The batch as (int32 tokens (n, decisions), float64 rewards (n,)), sorted by tokens.

        The canonical order makes ``update`` independent of the order the loop
        passes results in. ``ValueError`` for invalid tokens, non-finite
        rewards or unequal lengths.
        """
        rows = [self.space.from_tokens(t).tokens for t in tokens]
        values = list(rewards)
        if len(rows) != len(values):
            raise ValueError(f"got {len(rows)} token lists but {len(values)} rewards")
        values = [check_reward(r) for r in values]
        order = sorted(range(len(rows)), key=lambda i: (rows[i], values[i]))
        return (np.array([rows[i] for i in order], dtype=np.int32).reshape(len(rows), self.space.num_decisions),
                np.array([values[i] for i in order], dtype=np.float64))


def reward_stats(rewards: np.ndarray) -> dict:
    """Batch size, mean and best reward (``None`` for an empty batch)."""
    if not len(rewards):
        return {"n": 0, "mean_reward": None, "max_reward": None}
    return {"n": int(len(rewards)), "mean_reward": float(rewards.mean()), "max_reward": float(rewards.max())}


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------


class RandomController(Controller):
    """Uniform samples of the space; ``update`` learns nothing."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int, settings: RandomSettings = RandomSettings()):
        super().__init__(space, seed)

    def propose(self, step: int, n: int) -> list[Proposal]:
        rng = self.rng(step)
        return [Proposal(self.space.sample(rng).tokens) for _ in range(check_int("n", n, 0))]

    def update(self, step: int, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict:
        check_int("step", step, 0)
        return reward_stats(self.check_batch(tokens, rewards)[1])

    def state_bytes(self) -> bytes:
        return json.dumps(self.state_header()).encode()

    def load_state_bytes(self, data: bytes) -> None:
        self.check_state_header(_json_state(data))


def _json_state(data: bytes) -> dict:
    try:
        state = json.loads(bytes(data).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"controller state is not the JSON this controller writes: {exc}") from None
    if not isinstance(state, dict):
        raise ValueError(f"controller state must be a JSON object, got {type(state).__name__}")
    return state


class EvolutionController(Controller):
    """Regularized evolution (Real et al. 2019).

    The population is the ``population_size`` youngest results, oldest first.
    Until it is full, proposals are uniform samples; after that each proposal
    mutates one decision (:meth:`SearchSpace.mutate`) of the best of
    ``tournament_size`` distinct members drawn at random (ties go to the
    younger). ``update`` appends a batch in token order (see
    :meth:`Controller.check_batch`), then drops the oldest.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int, settings: EvolutionSettings = EvolutionSettings()):
        super().__init__(space, seed)
        self.settings = settings
        self.population: list[tuple[tuple[int, ...], float]] = []
        self.observed = 0

    def propose(self, step: int, n: int) -> list[Proposal]:
        rng, n = self.rng(step), check_int("n", n, 0)
        if len(self.population) < self.settings.population_size:
            return [Proposal(self.space.sample(rng).tokens) for _ in range(n)]
        return [Proposal(self.space.mutate(self._tournament(rng), rng).tokens) for _ in range(n)]

    def _tournament(self, rng: np.random.Generator) -> tuple[int, ...]:
        drawn = rng.choice(len(self.population), size=self.settings.tournament_size, replace=False)
        best = max(drawn, key=lambda i: (self.population[i][1], i))
        return self.population[best][0]

    def update(self, step: int, tokens: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict:
        check_int("step", step, 0)
        rows, values = self.check_batch(tokens, rewards)
        batch = [(tuple(int(t) for t in row), float(r)) for row, r in zip(rows, values)]
        self.population = (self.population + batch)[-self.settings.population_size:]
        self.observed += len(batch)
        return {**reward_stats(values), "population": len(self.population), "observed": self.observed,
                "population_best": max((r for _, r in self.population), default=None)}

    def state_bytes(self) -> bytes:
        return json.dumps({**self.state_header(), "settings": asdict(self.settings), "observed": self.observed,
                           "population": [[list(t), r] for t, r in self.population]}).encode()

    def load_state_bytes(self, data: bytes) -> None:
        state = _json_state(data)
        self.check_state_header(state)
        if state.get("settings") != asdict(self.settings):
            raise ValueError(f"controller state has settings {state.get('settings')!r}, "
                             f"expected {asdict(self.settings)!r}")
        try:
            population = [(self.space.from_tokens(t).tokens, check_reward(r))
                          for t, r in state["population"]]
            observed = check_int("observed", state["observed"], len(population))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"controller state lacks a well-formed population: {exc!r}") from None
        if len(population) > self.settings.population_size:
            raise ValueError(f"controller state holds {len(population)} members, "
                             f"expected at most {self.settings.population_size}")
        self.population, self.observed = population, observed


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def _build_ppo(space: SearchSpace, seed: int, settings: PPOSettings) -> Controller:
    from search.ppo import PPOController  # imports TensorFlow

    return PPOController(space, seed, settings)


@dataclass(frozen=True)
class ControllerSpec:
    """A registered controller: its one-line description, settings dataclass (its options) and constructor."""

    name: str
    description: str
    settings: type
    build: Callable[[SearchSpace, int, object], Controller]

    @property
    def options(self) -> dict:
        """Option name -> default value."""
        return asdict(self.settings())


CONTROLLERS: dict[str, ControllerSpec] = {spec.name: spec for spec in (
    ControllerSpec("ppo", "LSTM actor-critic sampling one decision per step, trained with PPO (MnasNet)",
                   PPOSettings, _build_ppo),
    ControllerSpec("evolution", "regularized (aging) evolution: mutate the best of a tournament, drop the oldest",
                   EvolutionSettings, EvolutionController),
    ControllerSpec("random", "uniform samples of the space (the baseline); learns nothing",
                   RandomSettings, RandomController),
)}


def controller_names() -> list[str]:
    """Registered controller names in registry order (``ppo``, the paper's, first)."""
    return list(CONTROLLERS)


def make_controller(name: str, space: SearchSpace, seed: int, **options) -> Controller:
    """A fresh controller; the same (name, space, seed, options) always starts from the same state.

    Unknown names and options, and bad option values, raise ``ValueError``.
    """
    if name not in CONTROLLERS:
        raise ValueError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    spec = CONTROLLERS[name]
    known = [f.name for f in fields(spec.settings)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"controller {name!r} has no option {unknown[0]!r}; "
                         f"its options: {', '.join(known) or 'none'}")
    return spec.build(space, seed, spec.settings(**options))
