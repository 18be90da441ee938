"""Stored search runs with chosen numbers, written through the library's record functions (no training)."""

from akd_tf.benchmark import RunSettings
from akd_tf.space import get_space
from latency_db.lut import build_lut
from akd_tf.target import ModelTarget
from latency_db.store import open_store
from search import runs
from search.config import ProxySettings, SearchConfig
from search.failures import Failure
from search.rewards import compute_reward

TINY_TARGET = ModelTarget(resolution=32, classes=10, channels=1)  # the demo's images, fed at the space's minimum
QUICK = RunSettings(num_runs=10, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0)


def tiny_search(name: str, **overrides) -> SearchConfig:
    """A search of the two-block ``lut-test`` space: random children trained one epoch on 64 demo images, scored on
    50 (a few seconds each); 4 trials in steps of 2 unless ``overrides`` say otherwise."""
    values = dict(name=name, space="lut-test", controller="random", reward_source="label", target_ms=0.05,
                  trials=4, batch_size=2, data={"source": "demo", "val_size": 50},
                  proxy=ProxySettings(epochs=1, train_size=64, batch_size=32))
    values.update(overrides)
    return SearchConfig(**values)


def build_tiny_lut(url: str) -> str:
    """Measure the whole ``lut-test`` latency table on this host into the database at ``url``; returns ``url``."""
    store = open_store(url)
    build_lut(store, "local", get_space("lut-test"), TINY_TARGET, settings=QUICK)
    store.close()
    return url


def first_child_priced_by_an_earlier_source(store, config: SearchConfig, latency_ms: float = 0.04):
    """Store run ``config`` as a crash left it after its first child (random, seed 0) was priced, before it
    trained, under a latency source since replaced: this host's table with a calibration #7 that is gone.
    Returns (the source recorded then, the source now, the first child)."""
    from search.controller import make_controller
    from search.evaluate import run_training_data
    from search.latency import LatencySource
    from search.loop import _facts

    space = get_space(config.space)
    current = LatencySource(store, "local", TINY_TARGET, measure=False).identity(space)
    before = {**current, "predictor": {**current["predictor"], "calibration_id": 7}}
    run, _ = runs.create_or_resume(store, config, _facts(config, run_training_data(config), None))
    runs.record_latency_source(store, run.id, before)
    runs.add_trials(store, run.id, 0, [runs.NewTrial(make_controller("random", space, 0).propose(0, 1)[0].tokens)])
    first = runs.step_trials(store, run.id, 0)[0]
    runs.record_latency(store, first.id, latency_ms=latency_ms, source="predicted", measurement_id=None, seconds=0.0)
    return before, current, runs.get_trial_by_id(store, first.id)


# (arch, accuracy or None for a failed child, latency ms); two controller steps of three
RUN_A = [("dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1", 0.50, 0.25),
         ("mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n2", 0.75, 1.00),
         ("dwconv_k3_se0_id_w1_n1:dwconv_k3_se0_noskip_w1_n1", None, 0.30),
         ("mbconv3_k3_se0_noskip_w1_n1:dwconv_k3_se0_id_w1_n1", 0.70, 0.60),
         ("dwconv_k3_se0_noskip_w1_n2:mbconv3_k3_se0_noskip_w1_n1", 0.40, 0.70),
         ("mbconv3_k3_se0_id_w1_n2:dwconv_k3_se0_id_w1_n2", 0.72, 0.80)]
RUN_B = [("dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1", 0.45, 0.25),
         ("dwconv_k3_se0_id_w1_n2:dwconv_k3_se0_id_w1_n2", 0.55, 0.40),
         ("dwconv_k3_se0_noskip_w1_n2:dwconv_k3_se0_id_w1_n1", 0.52, 0.35),
         ("mbconv3_k3_se0_noskip_w1_n1:mbconv3_k3_se0_noskip_w1_n1", 0.65, 0.90)]


def store_run(store, name, children, source, reward="mnas-soft", target_ms=0.5, target_mmacs=None):
    """Store run ``name`` of ``children`` (arch, accuracy or None for a failure, latency ms) in steps of 3."""
    config = SearchConfig(name=name, space="lut-test", controller="random", reward_source=source, reward=reward,
                          target_ms=target_ms, target_mmacs=target_mmacs,
                          trials=len(children), batch_size=3, data={"source": "demo", "val_size": 50},
                          proxy=ProxySettings(epochs=1, train_size=64, batch_size=32),
                          teachers=("teacher.keras",) if source == "kd" else ())
    run, _ = runs.create_or_resume(store, config, {"input_shape": [32, 32, 1], "classes": 10, "dataset": "demo"})
    space = get_space("lut-test")
    for step, first in enumerate(range(0, len(children), 3)):
        batch = children[first:first + 3]
        runs.add_trials(store, run.id, step, [runs.NewTrial(space.parse(arch).tokens) for arch, _, _ in batch])
        for trial, (_, accuracy, latency) in zip(runs.step_trials(store, run.id, step), batch):
            runs.record_latency(store, trial.id, latency_ms=latency, source="predicted", measurement_id=None,
                                seconds=0.0)
            if accuracy is None:
                runs.record_failure(store, trial.id, Failure("diverged", "TrainingDiverged: loss became nan at step 1"),
                                    max_attempts=config.max_attempts)
            else:
                runs.record_result(store, trial.id, accuracy=accuracy, train={}, train_seconds=2.0, worker="w:1",
                                   reward_terms=compute_reward(reward, accuracy, latency_ms=latency,
                                                               mmacs=trial.mmacs, target_ms=target_ms,
                                                               target_mmacs=target_mmacs))
