"""search.config: a run's settings from the options a user typed, for a new run and for a resume."""

from __future__ import annotations

import pytest

from search.config import CONTROLLER_OPTION_PARAMETERS, ProxySettings, SearchConfig, config_fields, config_for

OPTIONS = {  # every search option at its CLI default, keyed as the CLI's parameters are named
    "device_name": "local", "controller": "ppo", "reward": "mnas-soft", "reward_source": "kd", "target_ms": None,
    "target_mmacs": None, "trials": 100, "batch_size": 8, "seed": 0, "measure": False, "max_attempts": 3,
    "quantize": "none", "teacher_paths": (), "space_name": "mnasnet", "proxy_epochs": 5, "proxy_train_size": None,
    "proxy_batch_size": 128, "proxy_lr": 0.005, "alpha": 0.9, "temperature": 1.0, "dataset": "demo",
    "data_dir": None, "image_key": "image/encoded", "label_key": "image/class/label", "label_offset": 0,
    "val_size": None, "val_fraction": None, "split_seed": 0, "resolution": None, "channels": None,
    "mix_latency": False, **{parameter: None for parameter in CONTROLLER_OPTION_PARAMETERS},
}
PPO_DEFAULTS = {"hidden_units": 64, "learning_rate": 0.002, "entropy_weight": 0.05, "value_weight": 0.5,
                "clip_ratio": 0.2, "epochs": 4, "max_grad_norm": 0.5, "target_kl": None}


def test_a_new_run_takes_every_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fields = config_fields({**OPTIONS, "teacher_paths": ("t.keras",), "target_ms": 2.0, "resolution": 32})
    assert fields == {
        "device": "local", "controller": "ppo", "reward": "mnas-soft", "reward_source": "kd", "target_ms": 2.0,
        "target_mmacs": None, "trials": 100, "batch_size": 8, "seed": 0, "measure": False, "mix_latency": False,
        "max_attempts": 3, "quantization": "none", "teachers": [str(tmp_path / "t.keras")], "space": "mnasnet",
        "proxy": {"epochs": 5, "train_size": None, "batch_size": 128, "learning_rate": 0.005, "alpha": 0.9,
                  "temperature": 1.0},
        "data": {"source": "demo", "resolution": 32}}
    config = config_for("run-a", {**OPTIONS, "teacher_paths": ("t.keras",), "target_ms": 2.0})
    assert config == SearchConfig(name="run-a", teachers=(str(tmp_path / "t.keras"),), target_ms=2.0).validate()
    assert config.controller_options == PPO_DEFAULTS  # stored in full: a later change of a default changes no run


def test_controller_options_are_the_chosen_controller_s_and_bad_ones_name_their_flag():
    given = {**OPTIONS, "reward_source": "label", "target_ms": 1.0, "ppo_learning_rate": 0.01, "ppo_target_kl": 0.02}
    assert config_fields(given)["controller_options"] == {"learning_rate": 0.01, "target_kl": 0.02}
    assert config_for("run-o", given).validate().controller_options == {
        **PPO_DEFAULTS, "learning_rate": 0.01, "target_kl": 0.02}
    evolution = config_for("run-e", {**given, "ppo_learning_rate": None, "ppo_target_kl": None,
                                     "controller": "evolution", "evolution_population_size": 8})
    assert evolution.controller_options == {"population_size": 8, "tournament_size": 4}
    with pytest.raises(ValueError, match="^--evolution-population-size is an option of --controller evolution; "
                                         "this search's controller is ppo$"):
        config_for("run-x", {**given, "evolution_population_size": 8})
    with pytest.raises(ValueError, match=r"^tournament_size must be <= population_size=8, got 9 "
                                         r"\(--evolution-tournament-size, --evolution-population-size\)$"):
        config_for("run-x", {**given, "ppo_learning_rate": None, "ppo_target_kl": None, "controller": "evolution",
                             "evolution_population_size": 8, "evolution_tournament_size": 9}).validate()
    with pytest.raises(ValueError, match=r"^clip_ratio must be a finite number in \(0.0, 1.0\], got 1.5 "
                                         r"\(--ppo-clip-ratio\)$"):
        SearchConfig(name="x", reward_source="label", target_ms=1.0, controller_options={"clip_ratio": 1.5}).validate()
    unclipped = config_for("run-n", {**given, "ppo_max_grad_norm": "none"}).validate()  # typed as `none`
    assert unclipped.controller_options == {**PPO_DEFAULTS, "learning_rate": 0.01, "target_kl": 0.02,
                                            "max_grad_norm": None}
    with pytest.raises(ValueError, match="^controller 'ppo' has no option 'lr'; its options: hidden_units, "):
        SearchConfig(name="x", reward_source="label", target_ms=1.0, controller_options={"lr": 0.1}).validate()


def test_a_resume_takes_only_the_options_typed_again():
    assert config_fields(OPTIONS, typed=set()) == {}
    assert config_fields({**OPTIONS, "trials": 200, "proxy_epochs": 3, "val_size": 50},
                         typed={"trials", "proxy_epochs", "val_size"}) == {
        "trials": 200, "proxy": {"epochs": 3}, "data": {"val_size": 50}}
    stored = SearchConfig(name="run-b", reward_source="label", target_ms=1.5, data={"source": "demo", "val_size": 80})
    resumed = config_for("run-b", {**OPTIONS, "trials": 300, "val_size": 60}, stored=stored,
                         typed={"trials", "val_size"})
    assert resumed.trials == 300 and resumed.data == {"source": "demo", "val_size": 60}
    assert stored.differences(resumed) == ["data.val_size: 80 -> 60"]
    assert resumed.reward_source == "label" and resumed.target_ms == 1.5  # kept, not reset to the defaults


def test_a_resume_merges_typed_controller_options_into_the_stored_ones_of_the_stored_controller():
    stored = SearchConfig(name="run-r", controller="evolution", controller_options={"population_size": 8})
    typed = {"evolution_tournament_size"}  # --controller not typed: the CLI's default ppo is not the run's
    resumed = config_for("run-r", {**OPTIONS, "evolution_tournament_size": 2}, stored=stored, typed=typed)
    assert resumed.controller_options == {"population_size": 8, "tournament_size": 2}
    assert stored.differences(resumed) == ["controller_options.tournament_size: 4 -> 2"]
    with pytest.raises(ValueError, match="^--ppo-epochs is an option of --controller ppo; this search's controller "
                                         "is evolution$"):
        config_for("run-r", {**OPTIONS, "ppo_epochs": 2}, stored=stored, typed={"ppo_epochs"})
    other = config_for("run-r", {**OPTIONS, "controller": "ppo"}, stored=stored, typed={"controller"})
    assert stored.differences(other) == ["controller: 'evolution' -> 'ppo'"]  # options of two controllers: not listed


def test_a_run_stored_before_clipping_and_target_kl_existed_reads_as_trained_without_them():
    stored = SearchConfig(name="old-ppo").to_dict()
    stored["controller_options"] = {}  # what every run stored before controller options were filled in
    assert SearchConfig.from_dict(stored).controller_options == {**PPO_DEFAULTS, "max_grad_norm": None}
    assert SearchConfig.from_dict(SearchConfig(name="new-ppo").to_dict()).controller_options == PPO_DEFAULTS


def test_differences_name_only_the_settings_that_differ_stored_then_given():
    stored = SearchConfig(name="run-c", target_ms=1.5, controller_options={"learning_rate": 0.01},
                          data={"source": "demo", "val_size": 80}, proxy=ProxySettings(epochs=1, train_size=500))
    given = SearchConfig(name="run-c", target_ms=2.0, trials=500,
                         controller_options={"learning_rate": 0.01, "entropy_weight": 0.1},
                         data={"source": "demo", "resolution": 48}, proxy=ProxySettings(epochs=3, train_size=1000))
    assert stored.differences(given) == [
        "controller_options.entropy_weight: 0.05 -> 0.1", "target_ms: 1.5 -> 2.0", "data.val_size: 80 -> (default)",
        "data.resolution: (default) -> 48", "proxy.epochs: 1 -> 3", "proxy.train_size: 500 -> 1000"]
    assert stored.differences(stored) == [] and given.differences(given) == []


def test_a_typed_dataset_replaces_only_the_source():
    assert config_fields({**OPTIONS, "dataset": "tfds:mnist"}, typed={"dataset"}) == {"data": {"source": "tfds:mnist"}}


def test_unknown_stored_settings_are_refused():
    with pytest.raises(ValueError, match="unknown search settings: colour"):
        SearchConfig.from_dict({"name": "x", "colour": "red"})
