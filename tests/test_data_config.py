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


def test_the_default_resolution_is_the_images_own_for_arrays_and_224_for_folders_as_the_help_says(tmp_path):
    import numpy as np
    import tensorflow as tf

    from akd_tf.cli.train import train_cmd

    for label in range(2):
        for index in range(3):
            path = tmp_path / "imgs" / f"class{label}" / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(np.full((28, 28, 1), 40 * index, np.uint8)).numpy())
    np.savez(tmp_path / "small.npz", x=np.zeros((6, 28, 28), np.uint8), y=np.arange(6) % 2)
    np.savez(tmp_path / "large.npz", x=np.zeros((6, 48, 48, 3), np.uint8), y=np.arange(6) % 2)
    shapes = {name: load_configured(data_config(str(tmp_path / name), val_size=2), min_resolution=32).input_shape
              for name in ("imgs", "small.npz", "large.npz")}
    assert shapes == {"imgs": (224, 224, 3), "small.npz": (32, 32, 1), "large.npz": (48, 48, 3)}
    [resolution] = [param for param in train_cmd.params if param.name == "resolution"]
    assert resolution.help == (
        "Input side in pixels (default: the images' own size, at least 32, for demo, .npz and fixed-size tfds data; "
        "224 for image folders, TFRecords and tfds data of varying size, whose sizes are not read).")
