"""Early stopping of proxy children (``akd-tf search --early-stop``; off by default, so the paper's protocol holds).

The median stopping rule (Golovin et al., Google Vizier, 2017; Ray Tune's ``MedianStoppingRule``), with a
margin for the noise of mini-val:

* With early stopping a child is validated on mini-val after every proxy epoch, not only the last; its
  curve (top-1 after each epoch) is stored with its training summary (``val_top1``).
* Before a child starts, the search computes one threshold per epoch but the last from the curves of this
  run's children trained before (reused children and duplicates count once, through their network's first
  evaluation): at epoch ``e``, once at least :data:`MIN_CHILDREN` earlier children reached ``e``, the median
  ``m`` of their top-1 there, less twice the standard error of a top-1 of ``m`` on ``n`` mini-val images,
  ``2 * sqrt(m (1 - m) / n)``: "clearly below" means below what mini-val's own sampling noise explains.
* A child whose top-1 after epoch ``e`` is under that threshold stops there (Keras' ``stop_training``).

Its reward is honest about what happened: it is the reward of the accuracy it had when it stopped (its
mini-val top-1 after epoch ``e``), with its latency, exactly as if the proxy task had that many epochs. So
it is not compared at equal training with the others: it is the lower reward of a child that was clearly
behind, which is what the controller should learn from, and the trial says where it stopped
(``stopped_at_epoch``, 1-based, in its training summary; ``search top`` and the live display show it). A
stopped child is "done"; its network's later duplicates reuse its evaluation like any other. Runs with and
without early stopping are different settings: they never share evaluations, and a run cannot be resumed
with the other.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

MIN_CHILDREN = 4  # earlier children that must have reached an epoch before anyone is stopped there
MARGIN_STANDARD_ERRORS = 2.0


def stop_thresholds(curves: Iterable[Sequence[float]], epochs: int, val_examples: int) -> dict[int, float]:
    """Epoch index (0-based, every epoch but the last) -> the top-1 under which a child stops there, from the
    ``curves`` (top-1 after each epoch) of the children trained before; epochs with fewer than
    :data:`MIN_CHILDREN` curves reaching them have no threshold."""
    if val_examples < 1:
        raise ValueError(f"val_examples must be >= 1, got {val_examples!r}")
    curves = [list(curve) for curve in curves]
    thresholds = {}
    for epoch in range(epochs - 1):
        reached = [curve[epoch] for curve in curves if len(curve) > epoch]
        if len(reached) < MIN_CHILDREN:
            continue
        median = statistics.median(reached)
        margin = MARGIN_STANDARD_ERRORS * math.sqrt(median * (1.0 - median) / val_examples)
        thresholds[epoch] = median - margin
    return thresholds


def stopping_callback(thresholds: dict[int, float]):
    """A Keras callback that stops training after epoch ``e`` when its ``val_top1`` is under ``thresholds[e]``
    (keys may be strings, as a job's JSON gives them back)."""
    import tf_keras as keras

    by_epoch = {int(epoch): float(value) for epoch, value in thresholds.items()}

    class _MedianStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            threshold = by_epoch.get(epoch)
            top1 = (logs or {}).get("val_top1")
            if threshold is not None and top1 is not None and top1 < threshold:
                self.model.stop_training = True

    return _MedianStop()
