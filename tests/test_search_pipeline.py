"""Random search, evolution and PPO with several workers: the next step starts while a step's last children train
(one update of lag), updates stay one per step and in order, and no network is trained twice; with several
workers, whatever the controller, the children that train longest start first.

Each search runs as `akd-tf search --workers 2` from a script that registers the ``lut-test`` space (also in the
spawned workers) and, for the duplicate test, a controller that proposes the architectures it is given.
"""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from db_fixtures import sqlite_url  # noqa: F401  (fixture)
from run_fixtures import build_tiny_lut, tiny_search
from latency_db.store import open_store
from search import runs
from search.executors import SequentialExecutor
from search.loop import run_search, start_order

TESTS = Path(__file__).parent
A = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"
B = "mbconv3_k3_se0_id_w1_n2:dwconv_k3_se0_noskip_w1_n1"
C = "dwconv_k3_se0_noskip_w1_n1:mbconv3_k3_se0_id_w1_n2"

SEARCH_MAIN = """
import json
import sys
from dataclasses import dataclass
sys.path.insert(0, {tests!r})
from db_fixtures import tiny_space
tiny_space()  # in the search and, imported as __mp_main__, in each spawned worker of its pool

if __name__ == "__main__":
    from search.controller import CONTROLLERS, ControllerSpec
    from search.controller_base import Controller, Proposal, json_state, reward_stats

    @dataclass(frozen=True)
    class NoOptions:
        pass

    class Given(Controller):
        name = "given"
        asynchronous = True

        def __init__(self, space, seed, settings=NoOptions()):
            super().__init__(space, seed)

        def propose(self, step, n):
            return [Proposal(self.space.parse(arch).tokens) for arch in {steps!r}[step][:n]]

        def update(self, step, tokens, rewards):
            return reward_stats(self.check_batch(tokens, rewards)[1])

        def state_bytes(self):
            return json.dumps(self.state_header()).encode()

        def load_state_bytes(self, data):
            self.check_state_header(json_state(data))

    CONTROLLERS["given"] = ControllerSpec("given", "proposes the architectures it is given", NoOptions, Given)
    from akd_tf.cli import main
    main(sys.argv[1:])
"""


def search(tmp_path, url, name, controller, trials, steps=()):
    script = tmp_path / "search_main.py"
    script.write_text(SEARCH_MAIN.format(tests=str(TESTS), steps=[list(s) for s in steps]))
    done = subprocess.run([sys.executable, str(script), "search", "--db", url, "--name", name, "--space", "lut-test",
                           "--controller", controller, "--reward-source", "label", "--target-ms", "0.05",
                           "--trials", str(trials), "--batch-size", "2", "--val-size", "50", "--proxy-epochs", "1",
                           "--proxy-train-size", "64", "--proxy-batch-size", "32", "--workers", "2"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_next_step_starts_while_a_step_finishes_and_updates_stay_in_step_order(
        sqlite_url, tiny_space, tmp_path):  # noqa: F811
    # PPO, whose update of a step proposed a step ahead takes the proposing weights' probabilities (tested in
    # test_controller.py); random search and evolution run through the same pipeline
    url = build_tiny_lut(sqlite_url)
    output = search(tmp_path, url, "pipelined", "ppo", trials=6)
    assert ("2 children train at once; the ppo controller's next step starts while this one's last "
            "children finish (its proposals lag at most one update)") in output
    store = open_store(url)
    run = runs.get_run(store, "pipelined")
    trials = runs.all_trials(store, run.id)
    assert [(t.number, t.step, t.status) for t in trials] == [(n, n // 2, "done") for n in range(6)]
    assert [(s["step"], s["n"], s["trials"]) for s in run.controller_stats] == [
        (0, 2, [0, 1]), (1, 2, [2, 3]), (2, 2, [4, 5])]
    assert run.status == "finished"
    for step in (1, 2):  # each step's first child started before the step before had finished
        started = min(t.started_at for t in trials if t.step == step)
        assert started < max(t.finished_at for t in trials if t.step == step - 1), step
    store.close()


def test_a_network_still_training_in_one_step_is_reused_by_the_next_step_not_trained_again(
        sqlite_url, tiny_space, tmp_path):  # noqa: F811
    url = build_tiny_lut(sqlite_url)
    search(tmp_path, url, "duplicates", "given", trials=4, steps=[[A, B], [A, C]])
    store = open_store(url)
    trials = runs.all_trials(store, runs.get_run(store, "duplicates").id)
    assert [(t.step, t.arch, t.status) for t in trials] == [(0, A, "done"), (0, B, "done"), (1, A, "done"),
                                                            (1, C, "done")]
    assert trials[2].reused_from == trials[0].id and trials[2].accuracy == trials[0].accuracy
    trained = [t.arch for t in trials if t.reused_from is None]
    assert sorted(trained) == sorted([A, B, C])  # each network once
    store.close()


class TwoSlots(SequentialExecutor):
    """Trains in this process, a child at a time in the order submitted, while offering two slots as two workers
    do; records the numbers of the children in the order they were submitted."""

    capacity = 2

    def __init__(self):
        super().__init__()
        self.submitted = []

    def submit(self, fn, job, name=None):
        self.submitted.append(job["number"])
        return super().submit(fn, job)


@pytest.mark.parametrize("controller", ["ppo", "random"])  # a step at a time; children started as workers free
def test_with_several_workers_the_children_with_the_most_multiply_adds_start_first(
        sqlite_url, tiny_space, controller):  # noqa: F811
    store = open_store(build_tiny_lut(sqlite_url))
    executor = TwoSlots()
    run_search(store, tiny_search("longest-first", controller=controller, trials=4, batch_size=4), executor=executor)
    trials = runs.all_trials(store, runs.get_run(store, "longest-first").id)
    trained = [t for t in trials if t.reused_from is None]  # a duplicate of a network takes its result
    by_size = [t.number for t in sorted(trained, key=lambda t: (-t.mmacs, t.number))]
    assert len(by_size) >= 3 and by_size != sorted(by_size)  # the sizes decide, not the numbers
    assert executor.submitted == by_size
    assert [t.status for t in trials] == ["done"] * 4
    store.close()


def test_the_start_order_is_by_number_for_one_worker_and_by_multiply_adds_for_several():
    trials = [SimpleNamespace(number=n, mmacs=m) for n, m in [(0, 4.0), (1, 9.5), (2, 4.0), (3, 12.0), (4, 9.5)]]
    assert [t.number for t in start_order(reversed(trials), 1)] == [0, 1, 2, 3, 4]
    assert [t.number for t in start_order(trials, 2)] == [3, 1, 4, 0, 2]  # equals (duplicates) by number
