"""Which architectures a calibration measures: where the current predictor is least sure or most wrong.

Measuring whole models is what a new device costs, so a calibration spends its measurements where
they teach the most (adaptive sampling, as nn-Meter and LitePred do for kernels). It starts from a
random handful; then, round by round, it fits a small ensemble of learned corrections on bootstrap
resamples of what it has measured and scores every unmeasured candidate by

* how much the ensemble disagrees on it (the spread of the predicted log-ratios: least certain), plus
* how wrong the predictor was, out of fold, on the measured architecture nearest to it in feature
  space (most wrong),

and measures a batch that alternates the candidate farthest from everything measured (trees agree
with themselves outside their data, so the score alone never leads there: on this host the first
version of this sampler never measured a model above 16 MB of weights while random ones reach 34 MB,
and those were the ones it predicted worst) with the best-scoring one not too close to the others.
Everything is seeded and a measurement, once stored, is reused, so an
interrupted calibration that is run again picks the same architectures and measures only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from akd_tf.space import Arch
from latency_db.corrections import MIN_LEARNED_FIT, fit_learned, log_features

ENSEMBLE = 6  # bootstrap models per round
FOLDS = 5  # for the out-of-fold errors


@dataclass(frozen=True)
class SamplingPlan:
    """How many archs to measure: ``initial`` random ones, then rounds of ``batch`` until ``total``."""

    total: int
    initial: int
    batch: int

    @classmethod
    def for_total(cls, total: int) -> "SamplingPlan":
        """A third of the budget at random (at least enough that every out-of-fold fit has the learned method's
        minimum), the rest in rounds of a tenth (at least 5)."""
        enough = -(-MIN_LEARNED_FIT * FOLDS // (FOLDS - 1))  # ceil: (FOLDS - 1) / FOLDS of it fit each fold
        initial = min(total, max(enough, total // 3))
        return cls(total, initial, max(5, total // 10))


def _standardized(log_features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    spread = reference.std(axis=0)
    return (log_features - reference.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def candidate_scores(measured_features: np.ndarray, measured_ms: np.ndarray, candidate_features: np.ndarray,
                     seed: int) -> np.ndarray:
    """The score of each candidate (higher: measure it sooner): ensemble spread plus the out-of-fold error of
    its nearest measured neighbour, both in log-ratio units."""
    rng = np.random.default_rng(seed)
    n = len(measured_ms)
    predictions = []
    for member in range(ENSEMBLE):
        chosen = rng.integers(0, n, n)
        model = fit_learned(measured_features[chosen], measured_ms[chosen], seed=seed + member)
        predictions.append(np.log(model.predict_ms(candidate_features)))
    spread = np.std(predictions, axis=0)
    folds = np.arange(n) % FOLDS
    rng.shuffle(folds)
    out_of_fold = np.zeros(n)
    for fold in range(FOLDS):
        held = folds == fold
        model = fit_learned(measured_features[~held], measured_ms[~held], seed=seed)
        out_of_fold[held] = np.abs(np.log(model.predict_ms(measured_features[held]) / measured_ms[held]))
    reference = log_features(measured_features)
    measured_points = _standardized(reference, reference)
    candidate_points = _standardized(log_features(candidate_features), reference)
    distances = np.linalg.norm(candidate_points[:, None, :] - measured_points[None, :, :], axis=2)
    return spread + out_of_fold[np.argmin(distances, axis=1)]


def pick_batch(scores: np.ndarray, candidate_points: np.ndarray, measured_points: np.ndarray,
               count: int) -> list[int]:
    """Indices of ``count`` candidates to measure next, alternating two rules (explore, then exploit):

    * explore: the candidate farthest from everything measured or picked (a tree ensemble agrees with
      itself outside its data, so its disagreement alone never leads there);
    * exploit: the best-scoring candidate at least the measured points' median nearest-neighbour distance
      from everything measured or picked (the best-scoring one if none is that far).

    Points are standardized log features (:func:`_standardized`).
    """
    def distances_to(points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(candidate_points[:, None, :] - points[None, :, :], axis=2).min(axis=1)

    novelty = distances_to(measured_points)
    if len(measured_points) > 1:
        pairwise = np.linalg.norm(measured_points[:, None, :] - measured_points[None, :, :], axis=2)
        np.fill_diagonal(pairwise, np.inf)
        min_gap = float(np.median(pairwise.min(axis=1)))
    else:
        min_gap = 0.0
    picked: list[int] = []
    for number in range(min(count, len(scores))):
        open_ = np.ones(len(scores), bool)
        open_[picked] = False
        if number % 2 == 0:
            choice = int(np.argmax(np.where(open_, novelty, -np.inf)))
        else:
            far_enough = open_ & (novelty >= min_gap)
            pool = far_enough if far_enough.any() else open_
            choice = int(np.argmax(np.where(pool, scores, -np.inf)))
        picked.append(choice)
        novelty = np.minimum(novelty, distances_to(candidate_points[[choice]]))
    return picked


def adaptive_sample(candidates: Sequence[Arch], candidate_features: np.ndarray, plan: SamplingPlan,
                    measure: Callable[[list[Arch]], dict[Arch, float]], seed: int) -> dict[Arch, float]:
    """Measure ``plan.total`` of ``candidates`` (``measure`` returns latencies in ms) and return them all.

    The first ``plan.initial`` are the first candidates (a random sample when the candidates are);
    each later round measures ``plan.batch`` more, chosen by :func:`pick_batch` from their
    :func:`candidate_scores` and where they lie.
    """
    measured = measure(list(candidates[:plan.initial]))
    chosen = list(range(plan.initial))
    round_number = 0
    while len(chosen) < min(plan.total, len(candidates)):
        remaining = [i for i in range(len(candidates)) if i not in set(chosen)]
        have = np.array([measured[candidates[i]] for i in chosen])
        scores = candidate_scores(candidate_features[chosen], have, candidate_features[remaining],
                                  seed + 1000 * round_number)
        reference = log_features(candidate_features[chosen])
        count = min(plan.batch, plan.total - len(chosen))
        candidate_points = _standardized(log_features(candidate_features[remaining]), reference)
        batch = [remaining[i] for i in pick_batch(scores, candidate_points, _standardized(reference, reference), count)]
        measured.update(measure([candidates[i] for i in batch]))
        chosen.extend(batch)
        round_number += 1
    return measured
