"""Whether the proxy task ranks children at all: the check a search makes after its first step.

A child's top-1 on mini-val is measured on ``n`` examples, so it carries a binomial standard error of
``sqrt(p (1 - p) / n)`` at accuracy ``p``. Within :data:`NOISE_STANDARD_ERRORS` standard errors
(:func:`noise_tolerance`), two scores are indistinguishable. The proxy **cannot rank** a step's finished
children (each network counted once) when

* every one of them scored **at chance**: top-1 at most ``chance + noise_tolerance(chance, n)``, with
  ``chance = 1 / classes``; or
* two or more finished and their scores are **indistinguishable**: the highest minus the lowest is at most
  ``noise_tolerance(mean, n)``, the tolerance at their mean top-1.

Then a reward with a cost term ranks the children by their cost alone (one without, ``accuracy``, by
noise), and the controller learns nothing about accuracy.
For example, with 10 classes and 500 mini-val examples chance is 10.00% and its tolerance 2.68 points:
eight children that all scored 10.00% (as the demo's did with ``--proxy-epochs 1 --proxy-train-size 800``)
cannot be ranked.
"""

from __future__ import annotations

import math
from typing import Sequence

from akd_tf.errors import InvalidInput

NOISE_STANDARD_ERRORS = 2.0  # about 95% of a score's sampling noise lies within this many standard errors


def noise_tolerance(accuracy: float, val_examples: int) -> float:
    """``NOISE_STANDARD_ERRORS`` binomial standard errors of a top-1 of ``accuracy`` on ``val_examples``."""
    if isinstance(val_examples, bool) or not isinstance(val_examples, int) or val_examples < 1:
        raise InvalidInput(f"val_examples must be an int >= 1, got {val_examples!r}")
    if not 0.0 <= accuracy <= 1.0:
        raise InvalidInput(f"accuracy must be in [0, 1], got {accuracy!r}")
    return NOISE_STANDARD_ERRORS * math.sqrt(accuracy * (1.0 - accuracy) / val_examples)


def cannot_rank(accuracies: Sequence[float], classes: int, val_examples: int) -> str | None:
    """Why the proxy cannot rank networks with these top-1 scores (one per network; module docstring), or
    None when it can (or when none finished). The reason reads ``"all 8 networks scored within 2.68 points
    of chance (10.00% top-1 for 10 classes) on 500 mini-val examples"`` or ``"the top-1 of all 8 networks
    lies within 1.20 points (41.00% to 42.20%), inside the noise of 500 mini-val examples (4.41 points)"``."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise InvalidInput(f"classes must be an int >= 2, got {classes!r}")
    scores = [float(a) for a in accuracies]
    if not scores:
        return None
    chance = 1.0 / classes
    tolerance = noise_tolerance(chance, val_examples)
    networks = "the one network" if len(scores) == 1 else f"all {len(scores)} networks"
    if max(scores) <= chance + tolerance:
        return (f"{networks} scored within {_points(tolerance)} of chance ({chance:.2%} top-1 for {classes} "
                f"classes) on {val_examples} mini-val examples")
    if len(scores) < 2:
        return None
    low, high = min(scores), max(scores)
    noise = noise_tolerance(sum(scores) / len(scores), val_examples)
    if high - low <= noise:
        return (f"the top-1 of {networks} lies within {_points(high - low)} ({low:.2%} to {high:.2%}), "
                f"inside the noise of {val_examples} mini-val examples ({_points(noise)})")
    return None


def _points(share: float) -> str:
    """A difference of accuracies in percentage points: 0.0268 -> ``"2.68 points"``."""
    return f"{share * 100:.2f} points"


def advice(proxy_epochs: int, proxy_train_size: int | None, train_examples: int, weighs_cost: bool = True) -> str:
    """What to change when the proxy cannot rank: longer or larger proxy training (the current values named).
    ``weighs_cost``: whether the run's reward has a cost term (which then decides alone)."""
    size = f"now {proxy_train_size}" if proxy_train_size is not None else f"now all {train_examples}"
    outcome = "ranks children by their cost alone" if weighs_cost else "differs between children by noise alone"
    return (f"the reward then {outcome}. Give each child more to learn from: raise "
            f"--proxy-epochs (now {proxy_epochs}) or --proxy-train-size ({size}), or give more mini-val "
            f"examples (--val-size) so that scores can differ beyond their noise; check that the data's labels "
            f"are right")
