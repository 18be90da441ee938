"""``--early-stop``: the thresholds of both rules (median stopping, successive halving), a child stopped by them,
and a search that applies them to every child from the curves of the children before it."""

import math

import pytest

from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from run_fixtures import build_tiny_lut, tiny_search
from latency_db.store import open_store
from search import runs
from search.config import SearchConfig
from search.early_stop import MIN_CHILDREN, STOP_RULES, curve_of, stop_thresholds
from search.evaluate import train_child
from search.loop import run_search
from search.rewards import compute_reward

ARCH = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"


def test_a_threshold_is_the_median_less_two_standard_errors_once_enough_children_reached_the_epoch():
    curves = [[0.4, 0.50, 0.6], [0.5, 0.55, 0.7], [0.6, 0.60], [0.7]]
    thresholds = stop_thresholds(curves, epochs=3, val_examples=100)
    assert list(thresholds) == [0]  # epoch 1: three curves reach it; epoch 2, the last: never
    assert thresholds[0] == pytest.approx(0.55 - 2 * math.sqrt(0.55 * 0.45 / 100), abs=1e-12)
    assert stop_thresholds(curves[:MIN_CHILDREN - 1], epochs=3, val_examples=100) == {}
    assert stop_thresholds([[0.5]] * 4, epochs=1, val_examples=100) == {}
    with pytest.raises(ValueError, match="val_examples must be >= 1, got 0"):
        stop_thresholds(curves, epochs=3, val_examples=0)


def test_halving_keeps_the_top_third_at_rungs_1_3_9_and_skips_epochs_nobody_was_validated_on():
    assert [STOP_RULES["halving"].stop_epochs(epochs) for epochs in (1, 2, 3, 4, 10, 27)] == [
        [], [1], [1], [1, 3], [1, 3, 9], [1, 3, 9]]
    assert STOP_RULES["median"].stop_epochs(4) == [1, 2, 3]
    curves = [[0.1, None, 0.5, None], [0.2, None, 0.4, 0.5], [0.3], [0.4, None, 0.6, 0.7], [0.6, None, 0.2, 0.3]]
    thresholds = stop_thresholds(curves, epochs=5, val_examples=100, rule="halving")
    # Epoch 1: 0.1 0.2 0.3 0.4 0.6, the 2/3 quantile (linear) at 0.3 + (0.4 - 0.3) * 2/3; epoch 3: 4 curves,
    # 0.2 0.4 0.5 0.6, at 0.4 + 0.1; epochs 2 and 4 are not rungs.
    assert list(thresholds) == [0, 2]
    assert thresholds[0] == pytest.approx(0.3 + 0.1 * 2 / 3, abs=1e-12)
    assert thresholds[2] == pytest.approx(0.5, abs=1e-12)
    # The median rule reads the same curves, skipping an epoch not validated (None): epoch 2 has one value.
    assert list(stop_thresholds(curves, epochs=5, val_examples=100, rule="median")) == [0, 2]
    with pytest.raises(ValueError, match="unknown early-stopping rule 'asha'; known: median, halving"):
        stop_thresholds(curves, epochs=5, val_examples=100, rule="asha")


def test_a_curve_places_each_validation_after_its_epoch():
    assert curve_of([0.5, 0.7], [1, 3], 3) == [0.5, None, 0.7]
    assert curve_of([0.5], [1, 3], 1) == [0.5]  # stopped after epoch 1
    with pytest.raises(ValueError, match=r"2 validation results for the 1 validated epochs \[1\]"):
        curve_of([0.5, 0.7], [1, 3], 2)


def test_the_rule_is_a_setting_and_runs_stored_with_a_flag_read_as_the_median_rule(tiny_space):
    config = tiny_search("stop", early_stop="halving")
    assert SearchConfig.from_dict(config.to_dict()).early_stop == "halving"
    assert SearchConfig.from_dict({**config.to_dict(), "early_stop": True}).early_stop == "median"
    assert SearchConfig.from_dict({**config.to_dict(), "early_stop": False}).early_stop is None
    with pytest.raises(ValueError, match="early_stop must be one of median, halving \\(or none\\), got 'asha'"):
        SearchConfig.from_dict({**config.to_dict(), "early_stop": "asha"}).validate()


def job(thresholds, epochs=2, rule="median"):
    config = tiny_search("stop", early_stop=rule, proxy={"epochs": epochs, "train_size": 64, "batch_size": 32})
    # threads None: TensorFlow keeps the threads it started with in this process (it refuses a change later)
    return {"config": config.to_dict(), "arch": ARCH, "number": 1, "threads": None, "early_stop": thresholds}


def test_a_child_under_the_threshold_stops_after_that_epoch_with_the_accuracy_it_had_then(tiny_space):
    stopped = train_child(job({"0": 1.01}))  # no child reaches 101%: it stops after its first epoch
    assert stopped["status"] == "done"
    assert stopped["train"]["stopped_at_epoch"] == 1
    assert len(stopped["train"]["val_top1"]) == 1 and len(stopped["history"]["loss"]) == 1
    assert stopped["accuracy"] == stopped["train"]["val_top1"][0]

    finished = train_child(job({"0": -1.0}))  # every child passes: both epochs, validated after each
    assert "stopped_at_epoch" not in finished["train"]
    assert len(finished["train"]["val_top1"]) == 2
    assert finished["accuracy"] == finished["train"]["val_top1"][1]
    # The same seed and architecture: the first epoch is the same training either way.
    assert finished["train"]["val_top1"][0] == stopped["train"]["val_top1"][0]


def test_a_halving_child_is_validated_only_at_its_rungs_and_after_its_last_epoch(tiny_space):
    finished = train_child(job({"0": -1.0}, epochs=3, rule="halving"))
    assert len(finished["history"]["loss"]) == 3
    assert finished["history"]["val_top1"] == finished["train"]["val_top1"]  # placed by epoch for TensorBoard
    first, skipped, last = finished["train"]["val_top1"]
    assert skipped is None and finished["accuracy"] == last
    assert [values[1] for name, values in finished["history"].items() if name.startswith("val_")] == [None] * len(
        [name for name in finished["history"] if name.startswith("val_")])
    stopped = train_child(job({"0": 1.01}, epochs=3, rule="halving"))
    assert (stopped["train"]["stopped_at_epoch"], stopped["train"]["val_top1"]) == (1, [first])
    assert stopped["accuracy"] == first


@pytest.mark.parametrize("rule, epochs", [("median", 2), ("halving", 3)])
def test_a_search_stops_exactly_the_children_its_rule_says_and_rewards_them_by_what_they_reached(
        sqlite_url, tiny_space, rule, epochs):  # noqa: F811
    store = open_store(build_tiny_lut(sqlite_url))
    # Children that learn within an epoch (512 images, a high rate without warm-up), scored on 200 images so the
    # median's margin is small next to their spread: seeded, step 1 holds a child at chance (0.11 here) under a
    # threshold of about 0.17, and children above it. Halving over 3 epochs: validated after epochs 1 and 3.
    config = tiny_search("early", early_stop=rule, trials=8, batch_size=4, data={"source": "demo", "val_size": 200},
                         proxy={"epochs": epochs, "train_size": 512, "batch_size": 32, "learning_rate": 0.05,
                                "warmup_epochs": 0.0})
    run_search(store, config)
    trials = runs.all_trials(store, runs.get_run(store, "early").id)
    assert [t.status for t in trials] == ["done"] * 8
    stopped = [t.number for t in trials if "stopped_at_epoch" in t.train]
    assert stopped and all(trials[n].step == 1 for n in stopped) and len(stopped) < 4  # the rule ran both ways
    for trial in trials:
        trained = [t for t in trials if t.step < trial.step and t.reused_from is None]
        thresholds = stop_thresholds([t.train["val_top1"] for t in trained], epochs, 200, rule)
        if trial.reused_from is not None:
            continue
        curve = trial.train["val_top1"]
        if 0 in thresholds and curve[0] < thresholds[0]:
            assert trial.train["stopped_at_epoch"] == 1 and len(curve) == 1
        else:
            assert "stopped_at_epoch" not in trial.train
            assert curve[1:-1] == ([None] if rule == "halving" else []) and len(curve) == epochs
        assert trial.accuracy == curve[-1]
        terms = compute_reward(config.reward, curve[-1], latency_ms=trial.latency_ms, mmacs=trial.mmacs,
                               target_ms=config.target_ms, target_mmacs=config.target_mmacs)
        assert trial.reward == pytest.approx(terms["reward"], rel=1e-12)
    store.close()
