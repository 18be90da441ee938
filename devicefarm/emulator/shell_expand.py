"""Expanding the words of the emulated phone's shell: parameters, arithmetic, then field splitting.

``$?``, ``$NAME`` and ``${NAME}`` take the variable's value ("" when unset, as in sh); ``$((...))`` is
evaluated by :mod:`shell_arith` after the expansions inside it. An unquoted expansion's value is split into
fields at spaces, tabs and newlines and an empty one disappears, as in sh; quoted text never splits.
"""

from __future__ import annotations

import re
from typing import Callable

from devicefarm.emulator.shell_arith import evaluate
from devicefarm.emulator.shell_syntax import Lit, Param, Part, Word

Lookup = Callable[[str], str]  # a variable's value by name ("?" is the last status); "" when unset
_FIELD_SEPARATORS = re.compile(r"[ \t\n]+")


def part_value(part: Part, lookup: Lookup) -> str:
    """The text of one part of a word; ArithError for an arithmetic expansion mksh would refuse."""
    if isinstance(part, Lit):
        return part.text
    if isinstance(part, Param):
        return lookup(part.name)
    expression = "".join(part_value(inner, lookup) for inner in part.parts)
    return str(evaluate(expression, lookup))


def _splits(part: Part) -> bool:
    return not isinstance(part, Lit) and not part.quoted


def expand(word: Word, lookup: Lookup) -> list[str]:
    """The fields ``word`` expands to (none for a word that is only an empty unquoted expansion)."""
    fields: list[str] = []
    current, started = "", False
    for part in word.parts:
        value = part_value(part, lookup)
        if not _splits(part):
            current += value
            started = started or bool(value) or part.quoted
            continue
        for index, chunk in enumerate(_FIELD_SEPARATORS.split(value)):
            if index:  # a separator ended the field before it
                if started:
                    fields.append(current)
                current, started = "", False
            current += chunk
            started = started or bool(chunk)
    if started:
        fields.append(current)
    return fields


def expand_text(word: Word, lookup: Lookup) -> str:
    """``word`` expanded without field splitting (a variable's new value, a redirection's file name)."""
    return "".join(part_value(part, lookup) for part in word.parts)
