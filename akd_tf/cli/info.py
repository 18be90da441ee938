"""``akd-tf info``: versions in use and where the database is."""

from __future__ import annotations

import platform
from importlib import metadata

import click

import akd_tf
from akd_tf.cli.common import echo_json
from akd_tf.cli.options import json_option
from akd_tf.space import space_names


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@click.command()
@click.option("--db", "db_url", default=None, metavar="URL", help="Database URL to report instead of the default.")
@json_option
def info(db_url, as_json):
    """Print the interpreter, TensorFlow, Keras and numpy versions in use and where the database is."""
    from akd_tf.interpreter import load_interpreter
    from latency_db.config import mask_url, resolve_url

    interpreter = load_interpreter()
    record = {
        "database": mask_url(resolve_url(db_url)),
        "akd_tf": akd_tf.__version__,
        "python": platform.python_version(),
        "interpreter": interpreter.name,
        "interpreter_version": interpreter.version,
        "tensorflow": _version("tensorflow"),
        "keras": _version("tf-keras"),
        "numpy": _version("numpy"),
        "spaces": space_names(),
    }
    if as_json:
        echo_json(record)
        return
    click.echo(f"akd-tf       {record['akd_tf']} (python {record['python']})")
    click.echo(f"interpreter  {record['interpreter']} {record['interpreter_version']}")
    click.echo(f"tensorflow   {record['tensorflow']}")
    click.echo(f"keras        tf-keras {record['keras']}")
    click.echo(f"numpy        {record['numpy']}")
    click.echo(f"spaces       {', '.join(record['spaces'])}")
    click.echo(f"database     {record['database']}")
