"""The options of each registered controller, as frozen dataclasses (the keyword options of ``make_controller``).

Kept apart from the implementations so the registry, the CLI and the search
settings can read a controller's options without importing it (the PPO
controller imports TensorFlow). Each field carries an :class:`OptionInfo`
(``field(metadata={"option": ...})``): its meaning and the values it takes.
The checks of a settings object, the command line's options
(``--ppo-learning-rate`` ...) and their ``--help`` are all derived from it.
Bad values raise ``ValueError`` (:class:`InvalidOption`) naming them.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from akd_tf.errors import InvalidInput
from search.checks import check_int, check_number

_DEFAULT = object()  # OptionInfo.missing_means unset: a record without the option meant its default


class InvalidOption(InvalidInput):
    """A bad controller option value; ``options`` names the fields at fault (a range, or two that disagree)."""

    def __init__(self, options: tuple[str, ...], message: str):
        super().__init__(message)
        self.options = options


@dataclass(frozen=True)
class OptionInfo:
    """One controller option: what it does (``help``), its type (int or float) and range.

    Ints have only a lower bound; ``low_open`` excludes ``low``. ``none`` says what ``None`` means where it
    is allowed (else it is not). ``missing_means`` is for an option added after runs were stored: the value
    that a stored run or controller state without it was trained with, so it resumes exactly as it began.
    """

    help: str
    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False
    none: str | None = None
    missing_means: object = _DEFAULT

    def check(self, name: str, value) -> None:
        """:class:`InvalidOption` naming ``name`` unless ``value`` is in range (or an allowed ``None``)."""
        if value is None and self.none is not None:
            return
        try:
            if self.kind is int:
                check_int(name, value, int(self.low))
            else:
                check_number(name, value, self.low, self.high, low_open=self.low_open)
        except InvalidInput as exc:
            allowed = f" (or None: {self.none})" if self.none is not None else ""
            raise InvalidOption((name,), f"{exc}{allowed}") from None


def option(default, info: OptionInfo):
    """A settings field with its :class:`OptionInfo`."""
    return field(default=default, metadata={"option": info})


def option_infos(settings: type) -> dict[str, OptionInfo]:
    """Field name -> :class:`OptionInfo` of a settings dataclass, in field order."""
    return {f.name: f.metadata["option"] for f in fields(settings)}


def option_defaults(settings: type) -> dict:
    """Field name -> default value of a settings dataclass."""
    return {f.name: f.default for f in fields(settings) if f.default is not MISSING}


def stored_options(settings: type, stored: dict) -> dict:
    """The options a stored record (a run's settings, a controller state) was made with: ``stored`` plus,
    for each option it lacks that was added after it was written, the value it stands for
    (:attr:`OptionInfo.missing_means`)."""
    missing = {name: info.missing_means for name, info in option_infos(settings).items()
               if name not in stored and info.missing_means is not _DEFAULT}
    return {**missing, **stored}


def _check_options(settings) -> None:
    for name, info in option_infos(type(settings)).items():
        info.check(name, getattr(settings, name))


@dataclass(frozen=True)
class RandomSettings:
    """The random controller has no options."""


@dataclass(frozen=True)
class EvolutionSettings:
    """Regularized (aging) evolution, Real et al. 2019: population P and tournament sample size S."""

    population_size: int = option(16, OptionInfo(
        "Members kept, the youngest results (aging evolution's population P); proposals are uniform samples "
        "until it is full.", int, 1))
    tournament_size: int = option(4, OptionInfo(
        "Members drawn at random per proposal (the sample size S); the best of them is mutated. At most the "
        "population size.", int, 1))

    def __post_init__(self) -> None:
        _check_options(self)
        if self.tournament_size > self.population_size:
            raise InvalidOption(("tournament_size", "population_size"),
                                f"tournament_size must be <= population_size={self.population_size}, "
                                f"got {self.tournament_size}")


@dataclass(frozen=True)
class PPOSettings:
    """PPO controller: LSTM width, Adam learning rate, loss weights, clip range, epochs per update, gradient-norm
    clipping and an optional KL early stop of the epochs.

    Tuned on the surrogate reward of benchmarks/controller_vs_random.py
    (batch 8, 2,000 samples): learning rates 0.001-0.01 and entropy weights
    0.01-0.1 on seeds 0-2, the best few again on seeds 10-14. Faster learning
    or less entropy collapses early onto worse archs (0.005 and 0.01: best
    reward 1.05 against 1.12); 32 or 128 hidden units and 2 or 8 epochs did
    no better than 64 and 4. ``max_grad_norm`` is the reference
    implementations' default (Stable-Baselines3 and CleanRL: 0.5).
    """

    hidden_units: int = option(64, OptionInfo(
        "Width of the controller's LSTM and of its choice embeddings.", int, 1))
    learning_rate: float = option(0.002, OptionInfo(
        "Adam learning rate of the controller.", float, 0.0, low_open=True))
    entropy_weight: float = option(0.05, OptionInfo(
        "Weight of the entropy bonus in the PPO loss: more keeps exploring longer.", float, 0.0))
    value_weight: float = option(0.5, OptionInfo(
        "Weight of the critic's squared error in the PPO loss.", float, 0.0))
    clip_ratio: float = option(0.2, OptionInfo(
        "PPO's clip range epsilon: the probability ratio to the sampling policy is clipped to "
        "[1 - epsilon, 1 + epsilon].", float, 0.0, 1.0, low_open=True))
    epochs: int = option(4, OptionInfo(
        "Full-batch gradient steps on each controller step's children (PPO epochs).", int, 1))
    max_grad_norm: float | None = option(0.5, OptionInfo(
        "Gradients are scaled down to at most this global L2 norm before each Adam step.", float, 0.0,
        low_open=True, none="no clipping", missing_means=None))
    target_kl: float | None = option(None, OptionInfo(
        "Stop a step's epochs early once the approximate KL divergence of the updated policy from the one that "
        "sampled the children exceeds this.", float, 0.0, low_open=True,
        none="no early stop", missing_means=None))

    def __post_init__(self) -> None:
        _check_options(self)
