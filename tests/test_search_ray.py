"""Children trained by Ray tasks (a local Ray) land in the trials table exactly as children trained in-process."""

import pytest

from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.executors import RayExecutor, make_executor
from search.loop import run_search

pytest.importorskip("ray")

COLUMNS = ("number", "step", "arch", "tokens", "status", "mmacs", "params", "latency_ms", "latency_source",
           "measurement_id", "error")


def test_a_ray_search_fills_the_same_table_as_a_local_one(sqlite_url):  # noqa: F811
    store = open_store(sqlite_url)

    def search(name, executor, val_size):
        config = SearchConfig(name=name, controller="random", reward_source="label", target_ms=1.0, trials=2,
                              batch_size=2, measure=True, data={"source": "demo", "val_size": val_size},
                              proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
        try:
            return run_search(store, config, executor=executor)
        finally:
            executor.close()

    local = search("local", make_executor("local", 1), 50)
    ray_executor = make_executor("ray", 2)
    assert isinstance(ray_executor, RayExecutor)
    # Another mini-val, so the Ray run trains its children itself: a run of the same settings would reuse the
    # local run's evaluations of the same networks.
    remote = search("on-ray", ray_executor, 51)
    local_trials = runs.all_trials(store, runs.get_run(store, "local").id)
    ray_trials = runs.all_trials(store, runs.get_run(store, "on-ray").id)
    # Same seed, same random controller: the same children, priced by the same stored measurements.
    assert [[getattr(t, c) for c in COLUMNS] for t in ray_trials] == [[getattr(t, c) for c in COLUMNS]
                                                                      for t in local_trials]
    for trial in ray_trials:
        assert trial.status == "done" and trial.accuracy is not None and trial.reward is not None
        assert trial.worker.split(":")[1] != str(__import__("os").getpid())  # trained outside this process
        assert set(trial.train) == set(local_trials[0].train)
    assert remote["trials"] == local["trials"] == {"pending": 0, "done": 2, "failed": 0, "excluded": 0}
    store.close()


def test_executor_choices_are_checked():
    with pytest.raises(ValueError, match="unknown executor 'spark'; known: local, ray"):
        make_executor("spark", 1)
    with pytest.raises(ValueError, match=r"workers must be an int >= 1, got 0"):
        make_executor("local", 0)
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        make_executor("local", 2, "ray://head:10001")
