"""akd_tf.data_config: the data options a user types, normalised into what a run stores and loads."""

from __future__ import annotations

import pytest

from akd_tf.data_config import DATA_OPTION_NAMES, absolute_source, data_config, load_configured


def test_paths_are_made_absolute_and_named_sources_kept_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.npz").write_bytes(b"")
    (tmp_path / "images").mkdir()
    assert absolute_source("data.npz") == str(tmp_path / "data.npz")
    assert absolute_source("npz:data.npz") == f"npz:{tmp_path / 'data.npz'}"
    assert absolute_source("folder:images") == f"folder:{tmp_path / 'images'}"
    assert [absolute_source(v) for v in ("demo", "tfds:mnist", "missing.npz", "tfrecord:shards/*.tfrecord")] == [
        "demo", "tfds:mnist", "missing.npz", "tfrecord:shards/*.tfrecord"]


def test_defaults_are_left_out_and_set_options_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tfds").mkdir()
    assert data_config("demo") == {"source": "demo"}
    assert data_config("demo", data_dir="tfds", image_key="image/encoded", label_key="image/class/label",
                       label_offset=0, val_size=None, val_fraction=0.1, split_seed=0, resolution=32,
                       channels=None) == {"source": "demo", "data_dir": str(tmp_path / "tfds"),
                                          "val_fraction": 0.1, "resolution": 32}
    assert data_config("demo", image_key="img", label_offset=-1, split_seed=3, val_size=50, channels=1) == {
        "source": "demo", "val_size": 50, "channels": 1, "split_seed": 3, "image_key": "img",
        "label_key": "image/class/label", "label_offset": -1}


def test_option_names_are_data_config_s_arguments():
    import inspect

    assert tuple(inspect.signature(data_config).parameters) == DATA_OPTION_NAMES


def test_load_configured_loads_the_demo_with_its_options():
    training = load_configured(data_config("demo", val_size=100, resolution=32), min_resolution=32)
    assert training.mini_val.num_examples == 100
    assert training.resolution == 32
    with pytest.raises(ValueError, match="nope"):
        load_configured({"source": "nope.npz"}, min_resolution=32)

