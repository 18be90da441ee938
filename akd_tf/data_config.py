"""A training-data request as one JSON-able dict: what ``--dataset`` and its options name, stored with a run.

:func:`data_config` normalises the options a user typed (paths made absolute, defaults left out) into
the arguments of :func:`akd_tf.data.load_training_data`; :func:`load_configured` loads them. This
module does not import TensorFlow, so the CLI and the search's settings can use it freely.
"""

from __future__ import annotations

import os

DEFAULT_IMAGE_KEY = "image/encoded"
DEFAULT_LABEL_KEY = "image/class/label"
# The data options' names, as the CLI's parameters and data_config's arguments spell them.
DATA_OPTION_NAMES = ("dataset", "data_dir", "image_key", "label_key", "label_offset", "val_size", "val_fraction",
                     "split_seed", "resolution", "channels")


def absolute_source(value: str) -> str:
    """``value`` with its path made absolute when it names an existing file or directory (so a run stored with
    it works from any directory and on every Ray node); other sources (``demo``, ``tfds:NAME``, globs) as typed."""
    kind, sep, location = value.partition(":") if ":" in value else ("", "", value)
    if value == "demo" or kind == "tfds" or not os.path.exists(location):
        return value
    return f"{kind}{sep}{os.path.abspath(location)}"


def data_config(dataset: str, data_dir: str | None = None, image_key: str = DEFAULT_IMAGE_KEY,
                label_key: str = DEFAULT_LABEL_KEY, label_offset: int = 0, val_size: int | None = None,
                val_fraction: float | None = None, split_seed: int = 0, resolution: int | None = None,
                channels: int | None = None) -> dict:
    """The data options as ``{"source": ..., **load_training_data options}``, leaving out options at their
    defaults (so two runs that typed the same request store the same dict)."""
    options = {"source": absolute_source(dataset)}
    for name, value in (("data_dir", data_dir and os.path.abspath(data_dir)), ("val_size", val_size),
                        ("val_fraction", val_fraction), ("resolution", resolution), ("channels", channels)):
        if value is not None:
            options[name] = value
    if split_seed:
        options["split_seed"] = split_seed
    if (image_key, label_key) != (DEFAULT_IMAGE_KEY, DEFAULT_LABEL_KEY):
        options.update(image_key=image_key, label_key=label_key)
    if label_offset:
        options["label_offset"] = label_offset
    return options


def load_configured(config: dict, min_resolution: int):
    """Mini-train / mini-val (:class:`akd_tf.data.TrainingData`) of a :func:`data_config` dict."""
    from akd_tf import data

    options = dict(config)
    return data.load_training_data(options.pop("source"), min_resolution=min_resolution, **options)
