"""The controllers without a learned policy: uniform random samples and regularized evolution.

Both follow the contract of :class:`search.controller_base.Controller`; their
states are JSON (the header, the settings and, for evolution, the population).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np

from akd_tf.canonical import canonical_arch
from akd_tf.errors import InvalidInput
from akd_tf.space import Arch, SearchSpace
from search.checks import check_int, check_reward
from search.controller_base import Controller, Proposal, json_state, reward_stats
from search.controller_settings import EvolutionSettings, RandomSettings


class RandomController(Controller):
    """Uniform samples of the space; ``update`` learns nothing."""

    name = "random"
    asynchronous = True

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
        self.check_state_header(json_state(data))


MAX_PROPOSAL_TRIES = 100  # draws for a network not seen yet before evolution proposes a seen one (and says so)


class EvolutionController(Controller):
    """Regularized evolution (Real et al. 2019).

    The population is the ``population_size`` youngest results, oldest first.
    Until it is full, proposals are uniform samples; after that each proposal
    mutates one decision (:meth:`SearchSpace.mutate`) of the best of
    ``tournament_size`` distinct members drawn at random (ties go to the
    younger). ``update`` appends a batch in token order (see
    :meth:`Controller.check_batch`), then drops the oldest.

    Every proposal is a network not seen before: not one of ``seen`` (the
    canonical forms, :func:`akd_tf.canonical.canonical_arch`, of every
    architecture given to ``update`` or to ``remember_proposed``, which a
    search calls with every step it stores: a step proposed before the step
    before it is learnt from, as a search keeping its workers busy does,
    avoids that step's networks too) nor of the proposals before it in the
    batch. A draw that is such a network (a mutation of a decision that
    changes nothing, say a removed block's kernel) is redrawn, with a new
    tournament, up to :data:`MAX_PROPOSAL_TRIES` times; then the last draw
    is proposed with a note saying so (the search reuses its evaluation).
    """

    name = "evolution"
    asynchronous = True

    def __init__(self, space: SearchSpace, seed: int, settings: EvolutionSettings = EvolutionSettings()):
        super().__init__(space, seed)
        self.settings = settings
        self.population: list[tuple[tuple[int, ...], float]] = []
        self.observed = 0
        self.seen: set[tuple[int, ...]] = set()

    def propose(self, step: int, n: int) -> list[Proposal]:
        rng, n = self.rng(step), check_int("n", n, 0)
        if len(self.population) < self.settings.population_size:
            draw, what = (lambda: self.space.sample(rng)), "uniform samples"
        else:
            draw, what = (lambda: self.space.mutate(self._tournament(rng), rng)), "mutations of tournament winners"
        taken = set(self.seen)
        return [self._unseen(draw, taken, f"evolution, step {step}: none of {MAX_PROPOSAL_TRIES} {what} is a "
                                          f"network not seen before; proposing one seen before")
                for _ in range(n)]

    def remember_proposed(self, step: int, tokens: Sequence[Sequence[int]]) -> None:
        self.seen.update(self._network(row) for row in tokens)

    def _unseen(self, draw: Callable[[], Arch], taken: set[tuple[int, ...]], exhausted: str) -> Proposal:
        """The first of up to :data:`MAX_PROPOSAL_TRIES` draws whose network is not in ``taken`` (added to
        it), else the last draw with the note ``exhausted``."""
        for _ in range(MAX_PROPOSAL_TRIES):
            arch = draw()
            network = canonical_arch(arch).tokens
            if network not in taken:
                taken.add(network)
                return Proposal(arch.tokens)
        return Proposal(arch.tokens, note=exhausted)

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
        self.seen.update(self._network(tokens) for tokens, _ in batch)
        return {**reward_stats(values), "population": len(self.population), "observed": self.observed,
                "population_best": max((r for _, r in self.population), default=None)}

    def _network(self, tokens: Sequence[int]) -> tuple[int, ...]:
        return canonical_arch(self.space.from_tokens(tokens)).tokens

    def state_bytes(self) -> bytes:
        return json.dumps({**self.state_header(), "settings": asdict(self.settings), "observed": self.observed,
                           "population": [[list(t), r] for t, r in self.population],
                           "seen": [list(t) for t in sorted(self.seen)]}).encode()

    def load_state_bytes(self, data: bytes) -> None:
        state = json_state(data)
        self.check_state_header(state)
        self.check_state_settings(state.get("settings"), self.settings)
        try:
            population = [(self.space.from_tokens(t).tokens, check_reward(r))
                          for t, r in state["population"]]
            observed = check_int("observed", state["observed"], len(population))
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"controller state lacks a well-formed population: {exc!r}") from None
        if len(population) > self.settings.population_size:
            raise InvalidInput(f"controller state holds {len(population)} members, "
                               f"expected at most {self.settings.population_size}")
        # A state written before evolution kept "seen" knows only its population's networks.
        try:
            seen = {self._network(t) for t in state.get("seen", [t for t, _ in population])}
        except TypeError as exc:
            raise InvalidInput(f"controller state's seen networks are not token lists: {exc!r}") from None
        self.population, self.observed, self.seen = population, observed, seen
