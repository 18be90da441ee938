"""``--logdir``: a search's TensorBoard event files hold exactly what the run stored, and a folder that cannot be
written stops the search before any child trains."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow.core.util import event_pb2

from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from run_fixtures import build_tiny_lut, tiny_search
from latency_db.store import open_store
from search import runs
from search.loop import run_search


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``folder`` (not below it): tag -> [(step, value)] in written order."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


@pytest.fixture
def lut_url(sqlite_url, tiny_space):  # noqa: F811
    return build_tiny_lut(sqlite_url)


def test_the_event_files_hold_each_child_each_controller_step_and_the_best_reward(lut_url, tiny_space, tmp_path):
    store = open_store(lut_url)
    summary = run_search(store, tiny_search("board", controller="ppo"), logdir=str(tmp_path / "tb"))
    assert summary["trials"]["done"] == 4
    run = runs.get_run(store, "board")
    trials = runs.all_trials(store, run.id)
    root = tmp_path / "tb" / "board"
    assert sorted(p.name for p in root.iterdir()) == ["children", "controller", "search"]

    # One point per finished child, in the order they finished (the sequential executor: by number).
    search = scalars(root / "search")
    rewards = [t.reward for t in trials]
    assert [step for step, _ in search["child/reward"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in search["child/reward"]], rewards, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in search["child/accuracy"]], [t.accuracy for t in trials], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in search["child/latency_ms"]], [t.latency_ms for t in trials], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in search["search/best_reward"]], np.maximum.accumulate(rewards),
                               rtol=1e-6)

    # The controller's two updates, at steps 0 and 1, as stored with the run.
    controller = scalars(root / "controller")
    stored = {entry["step"]: entry for entry in run.controller_stats}
    assert sorted(stored) == [0, 1]
    for tag, key in (("entropy", "entropy"), ("approx_kl", "approx_kl"), ("clip_fraction", "clip_fraction"),
                     ("value_loss", "value_loss"), ("policy_loss", "policy_loss"), ("grad_norm", "grad_norm"),
                     ("epochs", "epochs"), ("reward_mean", "mean_reward"), ("reward_max", "max_reward")):
        assert [step for step, _ in controller[f"controller/{tag}"]] == [0, 1], tag
        np.testing.assert_allclose([v for _, v in controller[f"controller/{tag}"]],
                                   [stored[0][key], stored[1][key]], rtol=1e-6, err_msg=tag)
    for step in (0, 1):
        step_rewards = [t.reward for t in trials if t.step == step]
        assert controller["controller/children"][step] == (step, 2.0)
        assert controller["controller/reward_std"][step][1] == pytest.approx(np.std(step_rewards), rel=1e-6)

    # Each child's curves: one proxy epoch, its training loss, and its validation top-1 = its stored accuracy.
    assert sorted(p.name for p in (root / "children").iterdir()) == [f"child-{t.number:04d}" for t in trials]
    for trial in trials:
        child = root / "children" / f"child-{trial.number:04d}"
        train, validation = scalars(child / "train"), scalars(child / "validation")
        assert {"epoch_loss", "epoch_top1"} <= set(train)
        assert [step for step, _ in train["epoch_loss"]] == [0]
        assert validation["epoch_top1"] == [(0, pytest.approx(trial.accuracy, rel=1e-6))]
    store.close()


def test_a_logdir_that_cannot_be_written_stops_the_search_before_anything_is_stored(lut_url, tiny_space, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = open_store(lut_url)
    with pytest.raises(ValueError, match=r"cannot write TensorBoard logs to '.*a-file/tb/unwritable': Not a directory"):
        run_search(store, tiny_search("unwritable"), logdir=str(blocker / "tb"))
    assert runs.find_run(store, "unwritable") is None
    store.close()


def test_a_run_folder_that_cannot_be_written_stops_the_search_before_anything_is_stored(
        lut_url, tiny_space, tmp_path):
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "blocked").write_text("a file where the run's folder goes")
    store = open_store(lut_url)
    with pytest.raises(ValueError, match=r"cannot write TensorBoard logs to '.*tb/blocked': File exists"):
        run_search(store, tiny_search("blocked"), logdir=str(tmp_path / "tb"))
    assert runs.find_run(store, "blocked") is None
    store.close()


def test_curves_validated_after_some_epochs_only_are_placed_at_those_epochs(tmp_path):
    from search.tensorboard_log import SearchBoard

    board = SearchBoard(tmp_path, "curves")
    board.child_curves(3, {"loss": [2.0, 1.5, 1.0], "val_top1": [0.25, None, 0.5]})  # halving: epochs 1 and 3
    board.child_curves(4, {"loss": [2.0, 1.5], "val_top1": [0.4]})  # no early stopping: the last epoch only
    board.close()
    child = tmp_path / "curves" / "children"
    assert scalars(child / "child-0003" / "validation") == {"epoch_top1": [(0, 0.25), (2, 0.5)]}
    assert scalars(child / "child-0003" / "train") == {"epoch_loss": [(0, 2.0), (1, 1.5), (2, 1.0)]}
    assert scalars(child / "child-0004" / "validation") == {"epoch_top1": [(1, pytest.approx(0.4))]}


def test_the_command_line_refuses_such_a_logdir_naming_the_option(lut_url, tmp_path):
    from akd_tf.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["search", "--db", lut_url, "--space", "lut-test", "--reward-source", "label",
                                       "--target-ms", "0.05", "--trials", "2", "--name", "cli-unwritable",
                                       "--logdir", str(blocker / "tb")])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (f"Error: Invalid value for --logdir: cannot write TensorBoard logs to "
                                              f"'{blocker / 'tb'}': Not a directory")
    assert runs.find_run(open_store(lut_url), "cli-unwritable") is None
