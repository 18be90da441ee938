"""The registry of search controllers: each name with its description, options and constructor.

The contract every controller follows is :class:`search.controller_base.Controller`
(``propose`` / ``update`` / ``state_bytes``); :func:`make_controller` makes one
by name. Registered controllers (:data:`CONTROLLERS`):

==============  ==============================================================
``ppo``         LSTM actor-critic trained with PPO (MnasNet; :mod:`search.ppo`)
``evolution``   regularized (aging) evolution with tournament selection (:mod:`search.baselines`)
``random``      uniform samples of the space; learns nothing (:mod:`search.baselines`)
==============  ==============================================================

Options are the fields of each controller's settings dataclass
(:mod:`search.controller_settings`). No TensorFlow import here:
:mod:`search.ppo` is imported only when a PPO controller is made.
``Controller`` and ``Proposal`` are importable from here too, for the
importers of the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable

from akd_tf.errors import InvalidInput
from akd_tf.space import SearchSpace
from search.baselines import EvolutionController, RandomController
from search.controller_base import Controller, Proposal
from search.controller_settings import EvolutionSettings, PPOSettings, RandomSettings

__all__ = ["CONTROLLERS", "Controller", "ControllerSpec", "EvolutionSettings", "PPOSettings", "Proposal",
           "RandomSettings", "controller_names", "controller_settings", "make_controller"]


def _build_ppo(space: SearchSpace, seed: int, settings: PPOSettings) -> Controller:
    # Imported here, not at the top, because search.ppo imports TensorFlow (seconds); search.ppo
    # imports only search.controller_base and search.controller_settings, never this module.
    from search.ppo import PPOController

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


def controller_settings(name: str, options: dict):
    """The settings object of controller ``name`` with ``options`` (the rest at their defaults).

    Unknown names and options raise ``ValueError``; bad option values
    :class:`search.controller_settings.InvalidOption`, which names them.
    """
    if name not in CONTROLLERS:
        raise InvalidInput(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    spec = CONTROLLERS[name]
    known = [f.name for f in fields(spec.settings)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InvalidInput(f"controller {name!r} has no option {unknown[0]!r}; "
                           f"its options: {', '.join(known) or 'none'}")
    return spec.settings(**options)


def make_controller(name: str, space: SearchSpace, seed: int, **options) -> Controller:
    """A fresh controller; the same (name, space, seed, options) always starts from the same state.

    Unknown names and options, and bad option values, raise ``ValueError`` (:func:`controller_settings`).
    """
    settings = controller_settings(name, options)
    return CONTROLLERS[name].build(space, seed, settings)
