"""The options of each registered controller, as frozen dataclasses (the keyword options of ``make_controller``).

Kept apart from the implementations so the registry, the CLI and the search
settings can read a controller's options without importing it (the PPO
controller imports TensorFlow). Bad values raise ``ValueError`` naming them.
"""

from __future__ import annotations

from dataclasses import dataclass

from akd_tf.errors import InvalidInput
from search.checks import check_int, check_number


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
            raise InvalidInput(f"tournament_size must be <= population_size={self.population_size}, "
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
