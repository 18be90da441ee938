"""The code's shape, enforced: the import layers and cycles (import-linter's contracts in .importlinter), and
a CLI of small modules whose commands take few parameters (option groups arrive as one value)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import click

from akd_tf.cli import main

ROOT = Path(__file__).resolve().parents[1]
MAX_CLI_MODULE_LINES = 400
MAX_COMMAND_PARAMETERS = 10


def test_import_layers_and_no_cycles_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_cli_modules_are_small():
    lengths = {path.name: len(path.read_text().splitlines()) for path in (ROOT / "akd_tf" / "cli").glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_CLI_MODULE_LINES} == {}


def _commands(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from _commands(command.get_command(click.Context(command), name), path + (name,))


def test_every_command_takes_at_most_ten_parameters():
    too_many = {}
    for path, command in _commands(main):
        callback = inspect.unwrap(command.callback)
        named = [p for p in inspect.signature(callback).parameters.values() if p.kind != p.VAR_KEYWORD]
        if len(named) > MAX_COMMAND_PARAMETERS:
            too_many[" ".join(path)] = len(named)
    assert too_many == {}
