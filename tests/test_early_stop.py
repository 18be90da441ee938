"""``--early-stop``: the median stopping rule's thresholds, a child stopped by them, and a search that applies
them to every child from the curves of the children before it."""

import math

import pytest

from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from run_fixtures import build_tiny_lut, tiny_search
from latency_db.store import open_store
from search import runs
from search.early_stop import MIN_CHILDREN, stop_thresholds
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


def job(thresholds, epochs=2):
    config = tiny_search("stop", early_stop=True, proxy={"epochs": epochs, "train_size": 64, "batch_size": 32})
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


def test_a_search_stops_exactly_the_children_its_rule_says_and_rewards_them_by_what_they_reached(
        sqlite_url, tiny_space):  # noqa: F811
    store = open_store(build_tiny_lut(sqlite_url))
    # Children that learn within an epoch (512 images, a high rate without warm-up), scored on 200 images so the
    # margin is small next to their spread: seeded, step 1 holds a child at chance (0.11 here) under a threshold
    # of about 0.17, and children above it.
    config = tiny_search("early", early_stop=True, trials=8, batch_size=4, data={"source": "demo", "val_size": 200},
                         proxy={"epochs": 2, "train_size": 512, "batch_size": 32, "learning_rate": 0.05,
                                "warmup_epochs": 0.0})
    run_search(store, config)
    trials = runs.all_trials(store, runs.get_run(store, "early").id)
    assert [t.status for t in trials] == ["done"] * 8
    stopped = [t.number for t in trials if "stopped_at_epoch" in t.train]
    assert stopped and all(trials[n].step == 1 for n in stopped) and len(stopped) < 4  # the rule ran both ways
    for trial in trials:
        trained = [t for t in trials if t.step < trial.step and t.reused_from is None]
        thresholds = stop_thresholds([t.train["val_top1"] for t in trained], 2, 200)
        if trial.reused_from is not None:
            continue
        curve = trial.train["val_top1"]
        if 0 in thresholds and curve[0] < thresholds[0]:
            assert trial.train["stopped_at_epoch"] == 1 and len(curve) == 1
        else:
            assert "stopped_at_epoch" not in trial.train and len(curve) == 2
        assert trial.accuracy == curve[-1]
        terms = compute_reward(config.reward, curve[-1], latency_ms=trial.latency_ms, mmacs=trial.mmacs,
                               target_ms=config.target_ms, target_mmacs=config.target_mmacs)
        assert trial.reward == pytest.approx(terms["reward"], rel=1e-12)
    store.close()
