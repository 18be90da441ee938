"""`export --run` scores on the test split when the source has one, says so when it has none, and reports any
other problem with it before training (search.final.load_test_split)."""

import numpy as np
import pytest

from akd_tf.errors import MissingData, MissingSplit
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.final import export_trial, load_test_split
from search.rewards import compute_reward

SMALL = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"


def config(source: str) -> SearchConfig:
    return SearchConfig(name="split", space="lut-test", controller="random", reward_source="label", target_ms=0.5,
                        trials=1, batch_size=1, data={"source": source, "val_size": 4},
                        proxy=ProxySettings(epochs=1, batch_size=4))


def write_npz(path, **arrays):
    np.savez(path, x=np.zeros((12, 8, 8), np.uint8), y=np.arange(12) % 2, **arrays)
    return str(path)


def test_a_source_without_a_test_split_has_none_and_every_other_problem_is_reported(tmp_path):
    assert load_test_split(config("demo")).num_examples == 2000
    assert load_test_split(config(write_npz(tmp_path / "train-only.npz"))) is None
    (tmp_path / "imgs" / "train" / "cat").mkdir(parents=True)
    assert load_test_split(config(str(tmp_path / "imgs"))) is None  # split folders, none named test
    broken = write_npz(tmp_path / "broken.npz", x_test=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"broken.npz has no 'y_test' array for split 'test'") as raised:
        load_test_split(config(broken))
    assert not isinstance(raised.value, MissingSplit)
    with pytest.raises(MissingData, match=r"no such file or directory"):
        load_test_split(config(str(tmp_path / "moved-away.npz")))


def test_export_stops_on_a_broken_test_split_before_training(tmp_path, tiny_space):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    run, _ = runs.create_or_resume(store, config(write_npz(tmp_path / "broken.npz", y_test=np.zeros(3, int))),
                                   {"input_shape": [32, 32, 1], "classes": 2})
    runs.add_trials(store, run.id, 0, [runs.NewTrial(tiny_space.parse(SMALL).tokens)])
    [trial] = runs.step_trials(store, run.id, 0)
    runs.record_latency(store, trial.id, latency_ms=0.25, source="predicted", measurement_id=None, seconds=0.0)
    runs.record_result(store, trial.id, accuracy=0.5, train={}, train_seconds=1.0, worker="w:1",
                       reward_terms=compute_reward("mnas-soft", 0.5, latency_ms=0.25, target_ms=0.5))
    said = []
    with pytest.raises(ValueError, match=r"broken.npz has no 'x_test' array for split 'test'"):
        export_trial(store, "split", 0, tmp_path / "s.tflite", epochs=1, say=said.append)
    assert said == [] and not (tmp_path / "s.keras").exists()
    store.close()
