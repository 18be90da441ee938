"""The calibration's corrections (linear, LightGBM), their fitted region and the adaptive sampling of fit archs."""

import numpy as np
import pytest

from latency_db.corrections import (LearnedCorrection, Region, correction_of, fit_learned, library_version,
                                    region_of)
from latency_db.features import FEATURE_NAMES, FEATURES, describe
from latency_db.sampling import SamplingPlan, adaptive_sample, pick_batch


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and a latency that a table sum alone misses: 30% more once the weights pass 8 MB."""
    rng = np.random.default_rng(seed)
    features = np.column_stack([rng.uniform(0.1, 2.0, n), rng.uniform(0.5, 16.0, n), rng.uniform(5, 200, n),
                                rng.uniform(0.1, 3.0, n), rng.integers(5, 40, n).astype(float)])
    return features, features[:, 0] * np.where(features[:, 1] > 8.0, 1.3, 1.0)


def test_the_features_are_defined_once_with_units():
    assert FEATURE_NAMES == ("lut_ms", "weight_mb", "macs_m", "activation_mb", "operators")
    assert len(FEATURES) == len(FEATURE_NAMES)
    assert describe(np.array([1.5, 2.0, 3.25, 0.5, 17.0])) == \
        "lut_ms=1.5 weight_mb=2 macs_m=3.25 activation_mb=0.5 operators=17"


def test_learned_correction_learns_what_the_sum_misses_and_round_trips_through_its_text():
    features, latency = synthetic(80, 0)
    learned = fit_learned(features, latency, seed=3)
    test_features, test_latency = synthetic(200, 1)
    error = np.abs(learned.predict_ms(test_features) / test_latency - 1)
    raw_error = np.abs(test_features[:, 0] / test_latency - 1)
    assert np.mean(error <= 0.10) >= 0.9 > np.mean(raw_error <= 0.10)
    again = LearnedCorrection(learned.model_text)  # as the predictor loads it from the database
    np.testing.assert_array_equal(again.predict_ms(test_features), learned.predict_ms(test_features))
    assert fit_learned(features, latency, seed=3).model_text == learned.model_text  # deterministic
    assert learned.predict_ms(np.zeros((0, len(FEATURES)))).shape == (0,)
    assert library_version("lightgbm").startswith("lightgbm 4.")
    with pytest.raises(ValueError, match=r"^a learned calibration needs at least 10 measured archs, got 9$"):
        fit_learned(features[:9], latency[:9])


def test_a_stored_calibration_from_another_feature_set_is_refused():
    import lightgbm

    features, latency = synthetic(30, 0)
    six = lightgbm.train({"verbose": -1, "min_data_in_leaf": 5}, lightgbm.Dataset(np.column_stack([features, latency]),
                                                                                  label=latency), 5)
    text = six.model_to_string()
    with pytest.raises(ValueError, match=r"reads 6 features; this version computes 5: calibrate the device again"):
        LearnedCorrection(text)
    with pytest.raises(ValueError, match=r"names features \['lut_ms'\]; this version computes"):
        Region.from_dict({"features": ["lut_ms"], "low": [0.0], "high": [1.0]})

    class Row:
        id, method = 7, "cubic"

    with pytest.raises(ValueError, match=r"^calibration #7 has method 'cubic'; this version knows linear, lightgbm$"):
        correction_of(Row())


def test_region_flags_each_feature_beyond_a_tenth_past_its_fitted_range():
    region = Region.of(np.array([[1.0, 2.0, 10.0, 1.0, 10.0], [2.0, 4.0, 20.0, 2.0, 20.0]]))
    assert (region.low, region.high) == ((1.0, 2.0, 10.0, 1.0, 10.0), (2.0, 4.0, 20.0, 2.0, 20.0))
    rows = np.array([[2.2, 3.0, 15.0, 1.5, 12.0],  # lut 10% past the end: inside (the margin is 0.2)
                     [2.3, 4.5, 15.0, 0.7, 12.0]])
    assert region.outside(rows) == ["", "lut_ms 2.3 outside fitted 1..2; weight_mb 4.5 outside fitted 2..4; "
                                        "activation_mb 0.7 outside fitted 1..2"]
    assert Region.from_dict(region.to_dict()) == region

    class Row:
        region = None

    assert region_of(Row()) is None


def test_sampling_plan_spends_a_third_at_random_then_rounds_of_a_tenth():
    assert SamplingPlan.for_total(60) == SamplingPlan(60, 20, 6)
    assert SamplingPlan.for_total(30) == SamplingPlan(30, 13, 5)  # 13: every 4/5 out-of-fold fit keeps 10


def test_a_batch_alternates_the_farthest_candidate_and_the_best_scoring_one_not_too_close():
    measured = np.array([[0.0, 0.0], [1.0, 0.0]])  # median nearest-neighbour distance: 1
    candidates = np.array([[0.5, 0.0], [0.6, 0.1], [9.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    scores = np.array([9.0, 8.0, 0.0, 1.0, 2.0])
    # explore: [9, 0], the farthest; exploit: 0 and 1 lie within 1 of the measured points, so [0, 2] (score 2);
    # explore: [3, 0] (2 from [1, 0]); exploit: nothing else is far enough, so the best score, [0.5, 0]
    assert pick_batch(scores, candidates, measured, 4) == [2, 4, 3, 0]
    assert pick_batch(scores, candidates, measured, 9) == [2, 4, 3, 0, 1]  # no more than there are
    assert pick_batch(scores[:1], candidates[:1], measured[:1], 1) == [0]


def test_adaptive_sampling_measures_its_budget_once_each_and_repeats_its_picks():
    features, latency = synthetic(300, 5)
    candidates = [f"arch{i}" for i in range(300)]
    truth = dict(zip(candidates, latency))

    def run():
        batches = []

        def measure(archs):
            batches.append(list(archs))
            return {a: truth[a] for a in archs}

        measured = adaptive_sample(candidates, features, SamplingPlan(40, 16, 8), measure, seed=1)
        return measured, batches

    measured, batches = run()
    assert [len(b) for b in batches] == [16, 8, 8, 8]
    assert batches[0] == candidates[:16]  # the first picks are the (random) candidates in order
    picked = [a for b in batches for a in b]
    assert len(set(picked)) == 40 and set(measured) == set(picked)
    assert run()[1] == batches  # seeded: an interrupted calibration picks the same archs again
