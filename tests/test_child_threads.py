"""Where a child trains never changes its result: every process that trains children runs one thread per op.

Each child trains in a freshly spawned worker process, as a search's workers do; the test reads the
settings TensorFlow reports in the worker, and compares the results of the same child trained with one and
with two threads (a kernel split over two threads sums in another order, which changed them before).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from akd_tf.space import get_space
from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from run_fixtures import build_tiny_lut
from search.config import ProxySettings, SearchConfig
from search.evaluate import train_child
from search.executors import ProcessExecutor

CONFIG = SearchConfig(name="threads", controller="random", reward_source="label", target_ms=1.0, trials=1,
                      batch_size=1, seed=0, data={"source": "demo", "val_size": 1000, "channels": 3},
                      proxy=ProxySettings(epochs=1, train_size=1000, batch_size=32))
ARCH = get_space().sample_many(1, 0)[0].to_string()
TESTS = Path(__file__).parent
SEARCH_HERE = """
import json, os, sys
sys.path.insert(0, {tests!r})
from db_fixtures import tiny_space
tiny_space()
from latency_db.store import open_store
from run_fixtures import tiny_search
from search.loop import run_search
said = []
summary = run_search(open_store(sys.argv[1]), tiny_search("here", trials=2, batch_size=2), say=said.append)
import tensorflow as tf
print(json.dumps({{"done": summary["trials"]["done"], "said": said, "cores": len(os.sched_getaffinity(0)),
                  "per_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "side_by_side": tf.config.threading.get_inter_op_parallelism_threads()}}))
"""


def thread_settings(job: dict) -> dict:
    """A pool job: configure this worker as a child's job would, then say what TensorFlow runs with."""
    from search.evaluate import configure_child_threads

    configured = configure_child_threads(job["threads"])
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow starts with the settings
    return {"configured": configured, "per_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "side_by_side": tf.config.threading.get_inter_op_parallelism_threads(),
            "cores": len(os.sched_getaffinity(0))}


def in_a_fresh_worker(fn, job: dict) -> dict:
    executor = ProcessExecutor(1)
    try:
        [(_, result)] = list(executor.map_unordered(fn, [job]))
    finally:
        executor.close()
    return result


def test_a_worker_runs_one_thread_per_op_and_its_share_of_ops_side_by_side():
    two = in_a_fresh_worker(thread_settings, {"threads": 2})
    assert (two["configured"], two["per_op"], two["side_by_side"]) == (True, 1, 2)
    every_core = in_a_fresh_worker(thread_settings, {"threads": None})
    assert (every_core["configured"], every_core["per_op"]) == (True, 1)
    assert every_core["side_by_side"] == every_core["cores"]


def test_a_child_scores_the_same_whatever_threads_train_it():
    job = {"config": CONFIG.to_dict(), "arch": ARCH, "number": 1}
    one = in_a_fresh_worker(train_child, {**job, "threads": 1})
    two = in_a_fresh_worker(train_child, {**job, "threads": 2})
    assert one["status"] == two["status"] == "done"
    assert one["accuracy"] == two["accuracy"]
    assert (one["train"]["loss"], one["history"]) == (two["train"]["loss"], two["history"])


def test_a_search_that_trains_its_children_itself_runs_them_as_a_worker_would(sqlite_url, tiny_space):  # noqa: F811
    url = build_tiny_lut(sqlite_url)
    done = subprocess.run([sys.executable, "-c", SEARCH_HERE.format(tests=str(TESTS)), url], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["done"] == 2
    assert (report["per_op"], report["side_by_side"]) == (1, report["cores"])
    assert not [line for line in report["said"] if line.startswith("TensorFlow ran in this process")]
