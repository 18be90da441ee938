"""Parse a phone shell command line: simple commands joined by ``;``, ``&&`` and ``||``, with ``$?``.

Tokenizing is ``shlex`` (POSIX rules, ``punctuation_chars``); the lexer below also records, for every
character of a token, the lexer state it was read in, so a quoted ``';'`` stays a word while an unquoted
``;`` separates commands, exactly as in ``sh``. Everything else a real shell would interpret (pipes,
redirections, background ``&``, subshells, backticks, ``$(...)``, other ``$`` expansions, globs, comments,
newlines, reserved words, variable assignments) raises :class:`ShellSyntaxError` instead of being
silently taken literally.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

SEPARATORS = (";", "&&", "||")
PUNCTUATION = "();<>|&"
RESERVED_WORDS = frozenset({"!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for",
                            "function", "if", "in", "select", "then", "time", "until", "while"})
_UNQUOTED = (" ", "a")  # states in which a character is neither quoted nor escaped
_LITERAL = ("'", "\\")  # states in which "$" is not expanded
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class ShellSyntaxError(ValueError):
    """A command line the emulated shell will not run; the message is what ``sh`` prints after its name."""


@dataclass(frozen=True)
class Word:
    """One argument: its text after quote removal, and where in it ``$?`` is to be replaced."""

    text: str
    status_at: tuple[int, ...] = ()

    def expand(self, status: int) -> str:
        """The argument with every expandable ``$?`` replaced by ``status``."""
        parts, start = [], 0
        for index in self.status_at:
            parts.extend((self.text[start:index], str(status)))
            start = index + 2
        parts.append(self.text[start:])
        return "".join(parts)


@dataclass(frozen=True)
class Command:
    """A simple command and the separator before it (``";"`` for the first command)."""

    connector: str
    words: tuple[Word, ...]


class _Lexer(shlex.shlex):
    """``shlex`` that records the lexer state each token character was read in (``last_states``)."""

    def __init__(self, line: str):
        self._states: list[str] = []
        self.last_states: list[str] = []
        self._text = ""
        super().__init__(line, posix=True, punctuation_chars=PUNCTUATION)
        self.whitespace_split = True
        self.whitespace = " \t"  # a newline is a command separator in sh; here it is reported as unsupported
        self.commenters = ""

    @property
    def token(self) -> str:
        return self._text

    @token.setter
    def token(self, value: str) -> None:
        if value == "":
            self.last_states, self._states = self._states, []
        elif value.startswith(self._text):
            self._states.extend(self.state * (len(value) - len(self._text)))
        else:
            self._states = [self.state] * len(value)
        self._text = value


def _tokens(line: str) -> list[tuple[str, list[str]]]:
    lexer = _Lexer(line)
    tokens = []
    try:
        while (token := lexer.get_token()) is not None:
            tokens.append((token, list(lexer.last_states)))
    except ValueError as exc:
        reason = "unterminated quoted string" if "closing quotation" in str(exc) else "backslash at end of line"
        raise ShellSyntaxError(f"syntax error: {reason}") from None
    return tokens


def _is_operator(token: str, states: list[str]) -> bool:
    return bool(token) and token[0] in PUNCTUATION and states[0] == " "


def _word(token: str, states: list[str], first: bool) -> Word:
    status_at = []
    index = 0
    while index < len(token):
        char, state = token[index], states[index]
        follower = token[index + 1:index + 2]
        if char == "$" and state not in _LITERAL:
            if follower == "?" and states[index + 1] not in _LITERAL:
                status_at.append(index)
                index += 2
                continue
            if follower and (follower.isalnum() or follower in "_{(@*#!$-"):
                raise ShellSyntaxError(f"unsupported syntax: '${follower}'")
        elif char == "`" and state not in _LITERAL:
            raise ShellSyntaxError("unsupported syntax: '`'")
        elif state in _UNQUOTED:
            if char == "\n":
                raise ShellSyntaxError("unsupported syntax: newline")
            if char in "*?[":
                raise ShellSyntaxError(f"unsupported syntax: glob '{char}' in {token!r}")
            if index == 0 and char in "#~":
                raise ShellSyntaxError(f"unsupported syntax: '{char}' at the start of {token!r}")
        index += 1
    if first and all(state in _UNQUOTED for state in states):
        if token in RESERVED_WORDS:
            raise ShellSyntaxError(f"unsupported syntax: reserved word '{token}'")
        if _ASSIGNMENT.match(token):
            raise ShellSyntaxError(f"unsupported syntax: variable assignment '{token}'")
    return Word(token, tuple(status_at))


def parse(line: str) -> list[Command]:
    """The commands of ``line`` in order; ``ShellSyntaxError`` for anything but simple commands joined by
    ``;``, ``&&`` or ``||`` (an empty line gives no commands; a trailing ``;`` is allowed)."""
    commands: list[Command] = []
    connector, words = ";", []
    for token, states in _tokens(line):
        if _is_operator(token, states):
            if token not in SEPARATORS:
                raise ShellSyntaxError(f"unsupported syntax: '{token}'")
            if not words:
                raise ShellSyntaxError(f"syntax error: '{token}' unexpected")
            commands.append(Command(connector, tuple(words)))
            connector, words = token, []
        else:
            words.append(_word(token, states, first=not words))
    if words:
        commands.append(Command(connector, tuple(words)))
    elif connector != ";":
        raise ShellSyntaxError(f"syntax error: unexpected end of line after '{connector}'")
    return commands
