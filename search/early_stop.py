"""Early stopping of proxy children (``akd-tf search --early-stop [RULE]``; off by default, so the paper's
protocol holds).

Two rules, both asynchronous (a child is compared with the children of the run trained before its step, as
they finished, never waits for others):

* ``median``: the median stopping rule (Golovin et al., Google Vizier, 2017; Ray Tune's
  ``MedianStoppingRule``) with a margin for the noise of mini-val. A child is validated on mini-val after
  every epoch. At epoch ``e``, once at least :data:`MIN_CHILDREN` earlier children reached ``e``, the
  threshold is the median ``m`` of their top-1 there, less twice the standard error of a top-1 of ``m`` on
  ``n`` mini-val images, ``2 * sqrt(m (1 - m) / n)``: "clearly below" means below what mini-val's own
  sampling noise explains.
* ``halving``: asynchronous successive halving (ASHA: Li et al., 2020; Ray Tune's ``ASHAScheduler`` with a
  grace period of 1 epoch). Rungs stand at epochs 1, 3, 9, ... (powers of :data:`REDUCTION_FACTOR`) before
  the last; a child is validated only there and after its last epoch. At a rung, once at least
  :data:`MIN_CHILDREN` earlier children reached it, the threshold is the ``1 - 1/3`` quantile of their
  top-1 there (linear interpolation): only a child in the top third of those before it goes on.

A child whose top-1 after an epoch is under that epoch's threshold stops there (Keras' ``stop_training``).
A child's curve (top-1 after each epoch, ``None`` after an epoch it was not validated on) is stored with its
training summary (``val_top1``).

Its reward is honest about what happened: it is the reward of the accuracy it had when it stopped (its
mini-val top-1 after epoch ``e``), with its latency, exactly as if the proxy task had that many epochs. So
it is not compared at equal training with the others: it is the lower reward of a child that was behind,
which is what the controller should learn from, and the trial says where it stopped (``stopped_at_epoch``,
1-based, in its training summary; ``search top`` and the live display show it). A stopped child is "done";
its network's later duplicates reuse its evaluation like any other. Runs with different rules (or none) are
different settings: they never share evaluations, and a run cannot be resumed with another.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

MIN_CHILDREN = 4  # earlier children that must have reached an epoch before anyone is stopped there
MARGIN_STANDARD_ERRORS = 2.0  # median: how far under the median "clearly below" is
REDUCTION_FACTOR = 3  # halving: rungs at powers of it; the top 1/REDUCTION_FACTOR at a rung goes on


def _median_threshold(reached: list[float], val_examples: int) -> float:
    median = statistics.median(reached)
    return median - MARGIN_STANDARD_ERRORS * math.sqrt(median * (1.0 - median) / val_examples)


def _halving_threshold(reached: list[float], val_examples: int) -> float:
    return float(np.percentile(reached, 100.0 * (1.0 - 1.0 / REDUCTION_FACTOR)))


def _every_epoch(epochs: int) -> list[int]:
    return list(range(1, epochs))


def _rungs(epochs: int) -> list[int]:
    rungs, rung = [], 1
    while rung < epochs:
        rungs.append(rung)
        rung *= REDUCTION_FACTOR
    return rungs


@dataclass(frozen=True)
class StopRule:
    """An early-stopping rule: the epochs (1-based, before the last) where a child may stop, and the
    threshold there from the top-1s of the earlier children that reached it (and mini-val's size)."""

    name: str
    summary: str
    stop_epochs: Callable[[int], list[int]]
    threshold: Callable[[list[float], int], float]


STOP_RULES = {rule.name: rule for rule in (
    StopRule("median", "after any epoch, a top-1 clearly below (by twice mini-val's standard error) the median of "
             "the earlier children there", _every_epoch, _median_threshold),
    StopRule("halving", f"at epochs 1, {REDUCTION_FACTOR}, {REDUCTION_FACTOR ** 2}, ... (successive halving, "
             f"ASHA), a top-1 outside the top 1/{REDUCTION_FACTOR} of the earlier children there", _rungs,
             _halving_threshold),
)}
DEFAULT_RULE = "median"  # what a bare --early-stop means


def get_rule(name: str) -> StopRule:
    """The rule called ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in STOP_RULES:
        raise ValueError(f"unknown early-stopping rule {name!r}; known: {', '.join(STOP_RULES)}")
    return STOP_RULES[name]


def stop_thresholds(curves: Iterable[Sequence[float | None]], epochs: int, val_examples: int,
                    rule: str = DEFAULT_RULE) -> dict[int, float]:
    """Epoch index (0-based, where ``rule`` may stop a child) -> the top-1 under which a child stops there, from
    the ``curves`` (top-1 after each epoch, ``None`` where not validated) of the children trained before;
    epochs with fewer than :data:`MIN_CHILDREN` curves reaching them have no threshold."""
    if val_examples < 1:
        raise ValueError(f"val_examples must be >= 1, got {val_examples!r}")
    stop_rule = get_rule(rule)
    curves = [list(curve) for curve in curves]
    thresholds = {}
    for epoch in (e - 1 for e in stop_rule.stop_epochs(epochs)):
        reached = [curve[epoch] for curve in curves if len(curve) > epoch and curve[epoch] is not None]
        if len(reached) >= MIN_CHILDREN:
            thresholds[epoch] = stop_rule.threshold(reached, val_examples)
    return thresholds


def curve_of(val_top1: Sequence[float], validated_epochs: Sequence[int], epochs_run: int) -> list[float | None]:
    """A child's curve: top-1 after each of the ``epochs_run`` epochs it ran, ``None`` after one it was not
    validated on, from Keras' ``val_top1`` history (one value per validated epoch, in order)."""
    ran = [epoch for epoch in validated_epochs if epoch <= epochs_run]
    if len(ran) != len(val_top1):
        raise ValueError(f"{len(val_top1)} validation results for the {len(ran)} validated epochs {ran}")
    curve: list[float | None] = [None] * epochs_run
    for epoch, top1 in zip(ran, val_top1):
        curve[epoch - 1] = float(top1)
    return curve


def stopping_callback(thresholds: dict[int, float]):
    """A Keras callback that stops training after epoch ``e`` when its ``val_top1`` is under ``thresholds[e]``
    (keys may be strings, as a job's JSON gives them back)."""
    import tf_keras as keras

    by_epoch = {int(epoch): float(value) for epoch, value in thresholds.items()}

    class _EarlyStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            threshold = by_epoch.get(epoch)
            top1 = (logs or {}).get("val_top1")
            if threshold is not None and top1 is not None and top1 < threshold:
                self.model.stop_training = True

    return _EarlyStop()
