"""A click group whose subcommands are imported only when one of them runs (click's lazy-group pattern).

``akd-tf arch sample`` then imports the ``arch`` module alone, not the search's, the farm's or
TensorFlow; ``akd-tf --help`` imports each group's module (for its one-line help) but none of
the heavy libraries, which the commands import when they run.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group with ``lazy_subcommands``: command name -> ``"module.path:attribute"`` of a click command."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_subcommands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_subcommands[cmd_name]} is {type(command).__name__}, not a click command")
        return command
