"""The ``akd-tf`` group: its subcommands (loaded lazily), ``--debug``, and how errors reach the user.

An error of the user's input or environment (:func:`akd_tf.errors.is_user_error`) is printed as
one ``Error: ...`` line with exit status 1; anything else is a bug and keeps its traceback. With
``--debug`` (or ``AKD_TF_DEBUG=1``) every error shows its traceback, and TensorFlow's own log lines,
kept out otherwise (:mod:`akd_tf.cli.tf_logs`), reach stderr.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import click

import akd_tf
from akd_tf.cli.lazy import LazyGroup
from akd_tf.cli.tf_logs import tensorflow_logs_kept_out
from akd_tf.errors import is_user_error

COMMANDS = {
    "arch": "akd_tf.cli.arch:arch",
    "bench": "akd_tf.cli.export:bench",
    "db": "akd_tf.cli.latency:db",
    "devices": "akd_tf.cli.devices:devices",
    "experiment": "akd_tf.cli.experiment:experiment",
    "export": "akd_tf.cli.export:export_cmd",
    "info": "akd_tf.cli.info:info",
    "latency": "akd_tf.cli.latency:latency",
    "search": "akd_tf.cli.search:search",
    "teacher": "akd_tf.cli.train:teacher",
    "train": "akd_tf.cli.train:train_cmd",
}


LIBRARY_LOGGERS = ("latency_db",)  # loggers whose INFO lines are progress users should see (farm waits)


class _EchoHandler(logging.Handler):
    """Library log records as lines on stderr (``Warning: `` before warnings), through click."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "Warning: " if record.levelno >= logging.WARNING else ""
        click.echo(prefix + record.getMessage(), err=True)


@contextlib.contextmanager
def library_logs_shown() -> Iterator[None]:
    """Within the block, the library's progress and warnings (say, what a wait on the farm waits for) are printed
    on stderr, once each: they do not also reach the root logger's handlers (TensorFlow's absl logging gives the
    root logger a handler of Python's basic format the first time it logs, during a model's conversion, and each
    line would then be printed twice). The loggers are as they were after the block."""
    shown = []
    for name in LIBRARY_LOGGERS:
        logger, handler = logging.getLogger(name), _EchoHandler()
        shown.append((logger, handler, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, handler, level, propagate in shown:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


class RootGroup(LazyGroup):
    """The top-level group: turns user errors raised anywhere below it into one-line click errors."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug")
        try:
            with library_logs_shown(), contextlib.nullcontext() if debug else tensorflow_logs_kept_out():
                return super().invoke(ctx)
        except Exception as exc:
            if debug or not is_user_error(exc):
                raise
            raise click.ClickException(str(exc)) from exc


@click.group(cls=RootGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(akd_tf.__version__, prog_name="akd-tf")
@click.option("--debug", is_flag=True, envvar="AKD_TF_DEBUG",
              help="Show the full traceback of every error, and TensorFlow's own log lines (CUDA probing, "
                   "XNNPACK, retracing warnings) that are kept out otherwise (also: AKD_TF_DEBUG=1).")
def main(debug):
    """akd-tf: search, distill and export fast student networks for phones.

    Architectures are written as canonical strings; `akd-tf arch sample`
    prints some, `akd-tf arch show` explains one.
    """
