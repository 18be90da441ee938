"""Small helpers the command modules share: parsing an architecture, opening the store, printing."""

from __future__ import annotations

import json
import sys
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
