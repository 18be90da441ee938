"""Small helpers the command modules share: parsing an architecture, opening the store, printing."""

from __future__ import annotations

import json
import sys
import time
from typing import Callable

import click

from akd_tf.space import get_space


def parse_arch(space_name: str, text: str, param_hint: str = "ARCH"):
    """``text`` as an :class:`akd_tf.space.Arch` of the space; a bad string is a usage error naming it."""
    try:
        return get_space(space_name).parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from exc


def open_store(db_url: str | None):
    """The latency database at ``db_url`` (default: $AKD_TF_DB or the user's SQLite file), migrated."""
    from latency_db.store import open_store as open_latency_store

    return open_latency_store(db_url)


def echo_json(record) -> None:
    click.echo(json.dumps(record, indent=2))


def say_unless_json(as_json: bool) -> Callable[[str], None]:
    """Where progress messages go: the terminal, or nowhere when the output is one JSON document."""
    return (lambda _message: None) if as_json else click.echo


def keras_verbosity(as_json: bool) -> int:
    """Keras ``verbose``: silent for JSON output, a progress bar on a terminal, one line per epoch otherwise."""
    return 0 if as_json else (1 if sys.stdout.isatty() else 2)


PLAIN_PROGRESS_EVERY_S = 10.0  # without a terminal: a progress line at least this often while work advances
PLAIN_PROGRESS_STEP = 0.1  # ... and one per this share of the work


def progress_bar(length: int, label: str, *, item_show_func: Callable | None = None):
    """How far ``length`` steps of work got, as a context manager with ``update(n_steps, current_item=None)``.

    On a terminal, click's progress bar (position, ETA, the current item); elsewhere (a CI log, ``nohup``, a
    pipe), where that bar would print only its label, :class:`PlainProgress` lines.
    """
    if sys.stdout.isatty():
        return click.progressbar(length=length, label=label, show_eta=True, show_pos=True,
                                 item_show_func=item_show_func)
    return PlainProgress(length, label)


class PlainProgress:
    """Progress as plain lines, ``label: N/M (x%)``: when it starts, then whenever another
    :data:`PLAIN_PROGRESS_STEP` of the work is done or :data:`PLAIN_PROGRESS_EVERY_S` passed since the last
    line, and at the end."""

    def __init__(self, length: int, label: str, *, clock: Callable[[], float] = time.monotonic,
                 echo: Callable[[str], None] = click.echo):
        self.length, self.label, self.clock, self.echo = length, label, clock, echo
        self.pos = self.shown = 0
        self.shown_at = clock()

    def __enter__(self) -> "PlainProgress":
        self._show()
        return self

    def __exit__(self, *exc) -> None:
        if self.pos != self.shown:
            self._show()

    def update(self, n_steps: int, current_item=None) -> None:
        self.pos += n_steps
        step_done = self.pos - self.shown >= PLAIN_PROGRESS_STEP * self.length
        if self.pos >= self.length or step_done or self.clock() - self.shown_at >= PLAIN_PROGRESS_EVERY_S:
            self._show()

    def _show(self) -> None:
        share = self.pos / self.length if self.length else 1.0
        self.echo(f"{self.label}: {self.pos}/{self.length} ({share:.0%})")
        self.shown, self.shown_at = self.pos, self.clock()
