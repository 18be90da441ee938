"""Options that several commands share, each defined once, and the helper that groups options.

A group of options reaches a command as one argument (:func:`bundle`): the data options as one
dict, the input shape and quantization as one :class:`akd_tf.target.ModelTarget`, the timing
options as one :class:`akd_tf.benchmark.RunSettings`.
"""

from __future__ import annotations

import functools
from typing import Callable

import click

from akd_tf.space import DEFAULT_SPACE, get_space
from akd_tf.target import DEFAULT_TARGET, QUANTIZATIONS, ModelTarget
from akd_tf.train_settings import OPTIMIZERS, TrainSettings


def bundle(key: str, options: list, build: Callable[..., object] = dict):
    """A decorator adding click ``options`` whose values reach the command as one argument ``key``:
    ``build(**values)``, keyed by the options' parameter names."""

    def decorate(fn):
        names: list[str] = []

        @functools.wraps(fn)
        def bundled(*args, **kwargs):
            return fn(*args, **{key: build(**{name: kwargs.pop(name) for name in names})}, **kwargs)

        for option in reversed(options):
            bundled = option(bundled)
        names.extend(param.name for param in bundled.__click_params__[-len(options):])
        return bundled

    return decorate


def apply(options: list):
    """A decorator adding every option of ``options`` (each itself a decorator), first listed first."""

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _check_space(_ctx, _param, name):
    try:
        get_space(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return name


space_option = click.option("--space", "space_name", default=DEFAULT_SPACE, show_default=True,
                            callback=_check_space,
                            help="Named search space (see `akd-tf info` for the registered ones).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
db_option = click.option("--db", "db_url", default=None, metavar="URL",
                         help="Database URL (default: $AKD_TF_DB, else a SQLite file in the user data directory).")
cache_dir_option = click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                                help="Teacher-output cache (default: $AKD_TF_CACHE_DIR or "
                                     "~/.cache/akd-tf/teacher-outputs).")
device_option = click.option("--device", "device_name", default="local", show_default=True,
                             help="Device name ('local' is this host's CPU, stored as local@HOST, HOST being "
                                  "$AKD_TF_HOST_ID or the host name; phones are added by `akd-tf devices "
                                  "register`).")
table_option = click.option("--table", "table_id", type=click.IntRange(min=1), default=None, metavar="ID",
                            help="Latency table version to read, by its id in `akd-tf latency list` (default: "
                                 "the device's current version for the space, its runtime and 1 thread).")


def quantize_option(help_text: str):
    """``--quantize``, one of :data:`akd_tf.target.QUANTIZATIONS`, default none."""
    return click.option("--quantize", type=click.Choice(QUANTIZATIONS), default=DEFAULT_TARGET.quantization,
                        show_default=True, help=help_text)


SHAPE_OPTIONS = [
    click.option("--resolution", default=DEFAULT_TARGET.resolution, show_default=True, type=int,
                 help="Input height and width in pixels (the space bounds it, 32..224 for mnasnet)."),
    click.option("--channels", default=DEFAULT_TARGET.channels, show_default=True, type=click.IntRange(min=1),
                 help="Input image channels."),
    click.option("--classes", default=DEFAULT_TARGET.classes, show_default=True, type=click.IntRange(min=2),
                 help="Number of output classes."),
]


def shape_options(fn):
    """--resolution, --channels and --classes as separate parameters."""
    return apply(SHAPE_OPTIONS)(fn)


def _model_target(resolution: int, channels: int, classes: int, quantize: str) -> ModelTarget:
    return ModelTarget(resolution=resolution, classes=classes, channels=channels, quantization=quantize)


# The input shape, classes and quantization a latency is for, as one ``target`` (a ModelTarget).
target_options = bundle("target", [*SHAPE_OPTIONS, quantize_option("Quantization the latencies are for.")],
                        _model_target)


# The same options for commands that read a device's latency table: left out, each comes from the only shape
# of the table version read (latency_db.tables.resolve_target). One ``table`` dict of the typed values (None:
# not typed).
table_target_options = bundle("table", [
    click.option("--resolution", default=None, type=click.IntRange(min=1),
                 help=f"Input height and width in pixels (default: the latency table version's; without one, "
                      f"{DEFAULT_TARGET.resolution})."),
    click.option("--channels", default=None, type=click.IntRange(min=1),
                 help=f"Input image channels (default: the table's; else {DEFAULT_TARGET.channels})."),
    click.option("--classes", default=None, type=click.IntRange(min=2),
                 help=f"Number of output classes (default: the table's; else {DEFAULT_TARGET.classes})."),
    click.option("--quantize", "quantization", type=click.Choice(QUANTIZATIONS), default=None,
                 help=f"Quantization the latencies are for (default: the table's; else "
                      f"{DEFAULT_TARGET.quantization})."),
])


def _run_settings(runs: int, min_secs: float):
    from dataclasses import replace

    from akd_tf.benchmark import WHOLE_MODEL_SETTINGS

    return replace(WHOLE_MODEL_SETTINGS, num_runs=runs, min_secs=min_secs)


# --runs and --min-secs, as benchmark_model names them, as one ``settings``: the whole-model protocol
# (akd_tf.benchmark.WHOLE_MODEL_SETTINGS) with those two changed.
timing_options = bundle("settings", [
    click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1),
                 help="Least number of timed runs per model."),
    click.option("--min-secs", default=1.0, show_default=True, type=click.FloatRange(min=0),
                 help="Least total seconds of timed runs per model."),
], _run_settings)

wait_timeout_option = click.option(
    "--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
    help="On a phone: give up waiting for the farm after this long (default: wait until done).")
no_wait_option = click.option("--no-wait", is_flag=True,
                              help="On a phone: queue the measurement jobs and return; `akd-tf devices serve` "
                                   "workers measure and store them.")

# Where the images come from, how mini-val is carved out, and the input size networks see: one
# ``data_options`` dict (see akd_tf.data_config.data_config).
DATA_OPTIONS = [
    click.option("--dataset", default="demo", show_default=True, metavar="SOURCE",
                 help="'demo' (bundled animal-mnist, 10 classes of 28x28 silhouettes), an image folder "
                      "(DIR/<class>/...), a .npz with x and y, TFRecord files/glob/dir, or tfds:NAME."),
    click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                 help="Where tfds:NAME datasets are prepared (nothing is downloaded)."),
    click.option("--image-key", default="image/encoded", show_default=True, help="TFRecord image feature."),
    click.option("--label-key", default="image/class/label", show_default=True, help="TFRecord label feature."),
    click.option("--label-offset", default=0, show_default=True, type=int,
                 help="Added to stored labels of npz/TFRecord data (-1 for ImageNet's 1-based labels)."),
    click.option("--val-size", default=None, type=click.IntRange(min=1),
                 help="Examples held out of the training split as mini-val."),
    click.option("--val-fraction", default=None, type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 help="Share of the training split held out as mini-val (default 0.2)."),
    click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the mini-val split."),
    click.option("--resolution", default=None, type=click.IntRange(min=1),
                 help="Input side in pixels (default: the images' own size, at least 32, for demo, .npz and "
                      "fixed-size tfds data; 224 for image folders, TFRecords and tfds data of varying size, "
                      "whose sizes are not read)."),
    click.option("--channels", default=None, type=click.IntRange(min=1),
                 help="Input channels (default: the images' own; 1 <-> 3 is converted)."),
]
data_options = bundle("data_options", DATA_OPTIONS)


def fit_options(default_epochs: int):
    """How a model is trained (epochs, batch, learning rate, ...) and where its state goes: one ``fit_options``."""
    return bundle("fit_options", [
        click.option("--epochs", default=default_epochs, show_default=True, type=click.IntRange(min=1),
                     help="Training epochs."),
        click.option("--batch-size", default=TrainSettings.batch_size, show_default=True,
                     type=click.IntRange(min=1), help="Examples per training step."),
        click.option("--lr", "learning_rate", default=TrainSettings.learning_rate, show_default=True,
                     type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."),
        click.option("--warmup-epochs", default=TrainSettings.warmup_epochs, show_default=True,
                     type=click.FloatRange(min=0), help="Epochs of linear learning-rate warm-up before the cosine "
                                                        "decay."),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=TrainSettings.optimizer,
                     show_default=True, help="Adam was best on the demo; SGD uses Nesterov momentum 0.9."),
        click.option("--augment", is_flag=True,
                     help="Random flips and shifts (a teacher then runs online on every batch)."),
        click.option("--seed", default=0, show_default=True, type=int,
                     help="Seed of weights, shuffling and augmentation."),
        click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
                     help="Per-epoch state for resuming (default: OUT.ckpt next to --out; rerun the same "
                          "command to resume; removed when training finishes)."),
        click.option("--summary", "summary_path", default=None, type=click.Path(dir_okay=False),
                     help="Write the JSON summary here (default: OUT with .json instead of its suffix)."),
    ])
