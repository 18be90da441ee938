"""One network, one evaluation: a search trains each network once, reuses it for every duplicate (in the run
and across runs of the same settings), and says after its first step when the proxy cannot rank children.

Children are ``lut-test`` networks trained for one epoch on 64 demo images (a few seconds each), priced by a
latency table measured on this host. A controller forced to repeat itself proposes the architectures it is
given, so duplicates are certain rather than likely.
"""

import json
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from akd_tf.canonical import network_key
from db_fixtures import db_url, sqlite_url  # noqa: F401  (fixtures)
from run_fixtures import RUN_A, build_tiny_lut, store_run
from latency_db.schema import SearchRun, Trial
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.controller import CONTROLLERS, ControllerSpec
from search.controller_base import Controller, Proposal, json_state, reward_stats
from search.controller_settings import OptionInfo
from search.display import event_line, summary_lines
from search.loop import run_search

# A and A2 are one network: block 1 has one stride-2 layer (8 -> 16 channels), where no residual can exist,
# so its skip op builds nothing. B is another network.
A = "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1"
A2 = "dwconv_k3_se0_id_w1_n1:dwconv_k3_se0_noskip_w1_n1"
B = "mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n2"


@dataclass(frozen=True)
class RepeatSettings:
    steps: list = field(default_factory=list, metadata={"option": OptionInfo(
        "per controller step, the architecture strings to propose", list, 0)})  # as every controller option has


class RepeatController(Controller):
    """Proposes the architectures of its settings, step by step; records what each update received."""

    name = "repeat"
    received: list = []  # (step, token rows, rewards) per update, as check_batch orders them

    def __init__(self, space, seed, settings=RepeatSettings()):
        super().__init__(space, seed)
        self.settings = settings

    def propose(self, step, n):
        return [Proposal(self.space.parse(arch).tokens) for arch in self.settings.steps[step][:n]]

    def update(self, step, tokens, rewards):
        rows, values = self.check_batch(tokens, rewards)
        RepeatController.received.append((step, [tuple(r) for r in rows.tolist()], values.tolist()))
        return reward_stats(values)

    def state_bytes(self):
        return json.dumps(self.state_header()).encode()

    def load_state_bytes(self, data):
        self.check_state_header(json_state(data))


@pytest.fixture
def repeat_controller(monkeypatch):
    monkeypatch.setitem(CONTROLLERS, "repeat", ControllerSpec("repeat", "proposes the architectures it is given",
                                                              RepeatSettings, RepeatController))
    monkeypatch.setattr(RepeatController, "received", [])
    return RepeatController


@pytest.fixture
def lut_url(sqlite_url, tiny_space):  # noqa: F811
    return build_tiny_lut(sqlite_url)


def config(name, steps, **overrides):
    values = dict(name=name, space="lut-test", controller="repeat", controller_options={"steps": steps},
                  reward_source="label", target_ms=0.05, trials=sum(len(s) for s in steps), batch_size=len(steps[0]),
                  data={"source": "demo", "val_size": 50}, proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
    values.update(overrides)
    return SearchConfig(**values)


def trials_of(store, name):
    return runs.all_trials(store, runs.get_run(store, name).id)


EVALUATION = ("accuracy", "latency_ms", "latency_source", "measurement_id", "train", "reward", "reward_terms")


def test_a_controller_that_repeats_itself_trains_each_network_once(lut_url, repeat_controller, tiny_space):
    assert A != A2 and network_key(tiny_space.parse(A)) == network_key(tiny_space.parse(A2)) == A
    store = open_store(lut_url)
    events = []
    summary = run_search(store, config("repeat", [[A, A, A2], [B, A2, B]]), on_event=events.append)
    trials = trials_of(store, "repeat")
    by_id = {t.id: t for t in trials}
    assert [(t.number, t.arch, t.network, t.reused_from and by_id[t.reused_from].number) for t in trials] == [
        (0, A, A, None), (1, A, A, 0), (2, A2, A, 0), (3, B, B, None), (4, A2, A, 0), (5, B, B, 3)]
    for t in trials:
        assert t.status == "done"
        if t.reused_from is None:  # trained and measured here
            assert t.attempts == 1 and t.train_seconds > 0 and t.latency_seconds is not None and t.worker
        else:  # the original's evaluation, and nothing spent
            original = by_id[t.reused_from]
            assert [getattr(t, k) for k in EVALUATION] == [getattr(original, k) for k in EVALUATION]
            assert (t.attempts, t.train_seconds, t.latency_seconds, t.worker) == (0, None, None, None)
    # The controller learnt from every child, duplicates included, each with its network's reward.
    reward = {t.network: t.reward for t in trials}

    def batch(*archs):  # as the update receives it: (tokens, reward) sorted by tokens
        pairs = sorted((tiny_space.parse(arch).tokens, reward[network_key(tiny_space.parse(arch))]) for arch in archs)
        return [tokens for tokens, _ in pairs], [r for _, r in pairs]

    assert RepeatController.received == [(0, *batch(A, A, A2)), (1, *batch(B, A2, B))]
    # #4 reuses #0 at once; #3, a new network, trains, then #5 reuses it.
    assert [e.trial["number"] for e in events] == [0, 1, 2, 4, 3, 5]
    assert event_line(events[2]).startswith(f"[3/6] #2 top-1 {trials[0].accuracy:.2%}  {trials[0].latency_ms:.3f} ms "
                                            f"(predicted)  reward {trials[0].reward:.4f}  (reused #0: same network) | ")
    assert "reused" not in event_line(events[4]).split(" | ")[0]
    assert "(reused #3: same network)" in event_line(events[5])
    assert summary["reused"] == 4 and summary["trials"] == {"pending": 0, "done": 6, "failed": 0, "excluded": 0}
    assert summary_lines(summary)[0].startswith("search 'repeat': finished, 6 done (4 reused), 0 failed, 0 pending")
    store.close()


def test_runs_of_the_same_settings_share_evaluations_and_another_seed_does_not(lut_url, repeat_controller):
    store = open_store(lut_url)
    run_search(store, config("first", [[A]]))
    said = []
    run_search(store, config("second", [[A2, B]]), say=said.append)  # another budget and other proposals
    run_search(store, config("other-seed", [[A]], seed=1))
    first, second, other_seed = (trials_of(store, name) for name in ("first", "second", "other-seed"))
    assert second[0].reused_from == first[0].id and second[0].accuracy == first[0].accuracy
    assert second[1].reused_from is None and other_seed[0].reused_from is None
    assert "reusing the evaluations of run 'first' (the same settings, data and teacher): a child whose network " \
           "it evaluated is not trained again" in said
    assert runs.trial_dict(second[0])["reused_from"] == {"run": "first", "number": 0}
    from search.display import trial_outcome
    assert trial_outcome(runs.trial_dict(second[0])).endswith("  (reused #0 of run 'first': same network)")
    store.close()


def test_a_diverged_evaluation_is_reused_and_what_it_failed_with_reaches_the_update(lut_url, repeat_controller):
    store = open_store(lut_url)
    diverging = ProxySettings(epochs=1, train_size=64, batch_size=32, learning_rate=1e30)
    said = []
    run_search(store, config("nan", [[A, A2], [B]], proxy=diverging), on_event=lambda e: said.append(event_line(e)))
    first, second, third = trials_of(store, "nan")
    assert [(t.status, t.reused_from, t.attempts, t.reward) for t in (first, second)] == [
        ("failed", None, 1, 0.0), ("failed", first.id, 0, 0.0)]  # A2 is A: trained once, diverged once
    assert first.error.startswith("TrainingDiverged: loss became nan") and second.error == first.error
    assert second.train_seconds is None and second.worker is None and second.attempt_failures is None
    assert third.reused_from is None and third.attempts == 1  # another network: trained
    assert [(step, rewards) for step, _, rewards in RepeatController.received][0] == (0, [0.0, 0.0])
    assert any(line.startswith("[2/3] #1 FAILED: TrainingDiverged") and "(reused #0: same network)" in line
               for line in said)
    summary = runs.run_status(store, "nan")
    assert (summary["reused"], summary["reused_failed"]) == (0, 1)
    assert summary_lines(summary)[0].startswith(f"search 'nan': finished, {summary['trials']['done']} done, "
                                                f"{summary['trials']['failed']} failed (1 reused), 0 pending")
    store.close()


def test_runs_priced_by_another_latency_source_share_no_evaluation(lut_url, repeat_controller):
    store = open_store(lut_url)
    run_search(store, config("first", [[A]]))
    with store.session() as session:  # "first" priced its children with another table version than today's
        first = session.scalar(select(SearchRun).where(SearchRun.name == "first"))
        latency = first.config["latency"]
        other = {**latency["current"], "predictor": {**latency["current"]["predictor"], "table_id": 999}}
        first.config = {**first.config, "latency": {**latency, "current": other}}
    said = []
    run_search(store, config("second", [[A2]]), say=said.append)
    assert trials_of(store, "second")[0].reused_from is None  # trained, priced by its own source
    assert not any(line.startswith("reusing the evaluations") for line in said)
    store.close()


def test_after_its_first_step_a_search_says_when_the_proxy_cannot_rank_its_children(lut_url, tiny_space):
    store = open_store(lut_url)
    said = []
    untrainable = ProxySettings(epochs=1, train_size=64, batch_size=32, learning_rate=1e-9)  # children stay at chance
    run_search(store, config("chance", [[]], controller="random", controller_options={}, trials=2, batch_size=2,
                             proxy=untrainable), say=said.append)
    accuracies = [t.accuracy for t in trials_of(store, "chance")]
    reason = ("all 2 networks scored within 8.49 points of chance (10.00% top-1 for 10 classes) on 50 mini-val "
              "examples")
    assert max(accuracies) <= 0.1 + 0.0849
    assert said[-1] == (
        f"warning: the proxy task cannot rank this search's children: {reason}; the reward then ranks children "
        f"by their cost alone. Give each child more to learn from: raise --proxy-epochs (now 1) or "
        f"--proxy-train-size (now 64), or give more mini-val examples (--val-size) so that scores can differ "
        f"beyond their noise; check that the data's labels are right")
    with store.session() as session:
        stats = session.scalar(select(SearchRun).where(SearchRun.name == "chance")).controller_stats
    assert [s["proxy_cannot_rank"] for s in stats] == [reason]
    store.close()


# --- the records behind reuse (no training) ---------------------------------------------------------------------

FACTS = {"space_version": "1234abcd", "input_shape": [32, 32, 1], "classes": 10, "dataset": "demo",
         "data_fingerprint": "a/b", "teacher_fingerprint": None}


def test_runs_share_evaluations_exactly_when_only_search_settings_differ(sqlite_url, repeat_controller):  # noqa: F811
    store = open_store(sqlite_url)
    base = config("base", [[A]])
    made = {}
    for name, changes, facts in [
            ("same-but-search", dict(controller="random", controller_options={}, trials=9, batch_size=3,
                                     max_attempts=5), FACTS),
            ("other-seed", dict(seed=1), FACTS), ("other-target", dict(target_ms=0.1), FACTS),
            ("other-proxy", dict(proxy=ProxySettings(epochs=2, train_size=64, batch_size=32)), FACTS),
            ("other-data", {}, {**FACTS, "data_fingerprint": "a/c"}),
            ("edited-space", {}, {**FACTS, "space_version": "0badc0de"}),
            ("renamed-data", {}, {**FACTS, "dataset": "demo@train[mini_train][proxy-64]"})]:
        made[name] = runs.create_or_resume(store, config(name, [[A]], **changes), facts)[0].id
    base_id = runs.create_or_resume(store, base, FACTS)[0].id
    assert runs.sharing_runs(store, base_id) == {base_id: "base", made["same-but-search"]: "same-but-search",
                                                 made["renamed-data"]: "renamed-data"}
    store.close()


def test_trials_stored_without_a_network_get_theirs_before_a_search_looks_any_up(sqlite_url, tiny_space):  # noqa: F811
    store = open_store(sqlite_url)
    store_run(store, "old", RUN_A, "label")
    run = runs.get_run(store, "old")
    with store.session() as session:
        for trial in session.scalars(select(Trial)):
            trial.network = None  # as migration 0013 leaves the trials stored before it
    assert runs.fill_networks(store, [run.id]) == len(RUN_A)
    assert [t.network for t in trials_of(store, "old")] == [network_key(tiny_space.parse(a)) for a, _, _ in RUN_A]
    assert runs.fill_networks(store, [run.id]) == 0
    found = runs.evaluations_of(store, [run.id], [network_key(tiny_space.parse(RUN_A[1][0]))])
    assert [t.number for t in found.values()] == [1]
    store.close()
