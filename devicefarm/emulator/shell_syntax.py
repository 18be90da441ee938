"""Parse a command line of the emulated phone's shell into a script (:data:`Script`), or refuse it.

The grammar is a subset of ``sh`` (as mksh, Android's ``/system/bin/sh``, reads it), listed in
:data:`SUPPORTED_FORMS`::

    script    := and_or ((";" | newline) and_or)* [";"]
    and_or    := pipeline (("&&" | "||") pipeline)*
    pipeline  := command ("|" command)*
    command   := simple | "for" NAME ["in" WORD*] (";" | newline) "do" script "done" redirect*
    simple    := (NAME=WORD)* (WORD | redirect)*       -- assignments only without a command word
    redirect  := [1-2](">" | ">>") WORD | [0]"<" WORD | [1-2]">&"(1 | 2)

A word is made of literal text (single quotes, double quotes and backslashes quote it, as in sh) and the
expansions ``$?``, ``$NAME``, ``${NAME}`` and ``$((...))`` (arithmetic, :mod:`shell_arith`), unquoted or in
double quotes. ``#`` starts a comment at the start of a word. Everything else a real shell would interpret
(background ``&``, subshells and groups, ``$(...)`` and backticks, other ``$`` forms, globs, ``~``, here
documents, ``if``/``while``/``case`` and the other reserved words, other file descriptors) raises
:class:`ShellSyntaxError` whose message names the form and lists the supported ones, so nothing is ever
silently taken literally or half run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

SUPPORTED_FORMS = ("the emulated shell supports commands joined by ; && || | and newlines; redirections > >> < "
                   "2> 2>&1 >&2 (and /dev/null); for NAME in WORDS; do ...; done; NAME=VALUE; $? $NAME ${NAME} "
                   "$((...)); quotes, backslashes and # comments")
RESERVED_WORDS = frozenset({"!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for",
                            "function", "if", "in", "select", "then", "time", "until", "while"})
_OPERATORS = ("&&", "||", ";;", ">>", "<<", ">&", "<&", "<>", ">|", "&>", ";", "&", "|", "(", ")", "<", ">")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
SEPARATORS = (";", "\n")


class ShellSyntaxError(ValueError):
    """A command line the emulated shell will not run; the message is what it prints after its name."""


def unsupported(what: str) -> ShellSyntaxError:
    return ShellSyntaxError(f"unsupported syntax: {what} ({SUPPORTED_FORMS})")


# --- words --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lit:
    """Literal text; ``quoted`` text is never split into fields."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Param:
    """``$NAME``, ``${NAME}`` or ``$?`` (``name == "?"``)."""

    name: str
    quoted: bool = False


@dataclass(frozen=True)
class Arith:
    """``$((...))``: its text, with the ``$`` expansions inside it as :class:`Param` parts."""

    parts: tuple[Union[Lit, Param], ...]
    quoted: bool = False


Part = Union[Lit, Param, Arith]


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]

    def plain(self) -> str | None:
        """The word's text when it is unquoted literal text only (a reserved word, a name), else None."""
        if all(isinstance(part, Lit) and not part.quoted for part in self.parts):
            return "".join(part.text for part in self.parts)
        return None


# --- the script ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Redirect:
    """``fd op target``: ``op`` is ``>``, ``>>``, ``<`` (target a word) or ``>&`` (target a descriptor)."""

    fd: int
    op: str
    target: Union[Word, int]


@dataclass(frozen=True)
class Simple:
    assignments: tuple[tuple[str, Word], ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class ForLoop:
    name: str
    items: tuple[Word, ...]
    body: "Script"
    redirects: tuple[Redirect, ...] = ()


Command = Union[Simple, ForLoop]


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class AndOr:
    """A pipeline, then pipelines each run after ``&&`` (when the status so far is 0) or ``||`` (when it is not)."""

    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...] = ()


Script = tuple[AndOr, ...]


# --- lexing -------------------------------------------------------------------------------------------------

class _Lexer:
    """Tokens: ``("word", Word)``, ``("op", text)`` (newline included) and ``("io", fd)`` before a redirection."""

    def __init__(self, line: str):
        self.line, self.i = line, 0
        self.tokens: list[tuple[str, object]] = []
        self.parts: list[Part] = []
        self.lit: list[str] = []  # unquoted literal characters not yet in ``parts``

    def run(self) -> list[tuple[str, object]]:
        line = self.line
        while self.i < len(line):
            c = line[self.i]
            if c in " \t":
                self.end_word()
                self.i += 1
            elif c == "\n":
                self.end_word()
                self.tokens.append(("op", "\n"))
                self.i += 1
            elif c == "#" and not self.parts and not self.lit:
                end = line.find("\n", self.i)
                self.i = len(line) if end < 0 else end
            elif c in ";&|()<>":
                self.operator()
            elif c == "'":
                end = line.find("'", self.i + 1)
                if end < 0:
                    raise ShellSyntaxError("syntax error: unterminated quoted string")
                self.add(Lit(line[self.i + 1:end], quoted=True))
                self.i = end + 1
            elif c == '"':
                self.double_quoted()
            elif c == "\\":
                if self.i + 1 >= len(line):
                    raise ShellSyntaxError("syntax error: backslash at end of line")
                if line[self.i + 1] != "\n":  # backslash-newline continues the line
                    self.add(Lit(line[self.i + 1], quoted=True))
                self.i += 2
            elif c == "$":
                self.dollar(quoted=False)
            elif c == "`":
                raise unsupported("'`'")
            else:
                if c in "*?[":
                    raise unsupported(f"glob '{c}'")
                if c == "~" and not self.parts and not self.lit:
                    raise unsupported("'~' at the start of a word")
                self.lit.append(c)
                self.i += 1
        self.end_word()
        return self.tokens

    def add(self, part: Part) -> None:
        self.flush_lit()
        self.parts.append(part)

    def flush_lit(self) -> None:
        if self.lit:
            self.parts.append(Lit("".join(self.lit)))
            self.lit = []

    def end_word(self) -> None:
        self.flush_lit()
        if self.parts:
            self.tokens.append(("word", Word(tuple(self.parts))))
            self.parts = []

    def operator(self) -> None:
        line = self.line
        op = next(o for o in _OPERATORS if line.startswith(o, self.i))
        self.flush_lit()
        digits = "".join(p.text for p in self.parts) if all(
            isinstance(p, Lit) and not p.quoted for p in self.parts) else ""
        if op[0] in "<>" and digits.isdigit():  # 2>file: the digits name the descriptor
            if int(digits) > 2:
                raise unsupported(f"file descriptor {digits}")
            self.parts = []
            self.tokens.append(("io", int(digits)))
        else:
            self.end_word()
        self.tokens.append(("op", op))
        self.i += len(op)

    def double_quoted(self) -> None:
        line = self.line
        self.i += 1
        parts_before = len(self.parts)
        text: list[str] = []
        while True:
            if self.i >= len(line):
                raise ShellSyntaxError("syntax error: unterminated quoted string")
            c = line[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\" and self.i + 1 < len(line) and line[self.i + 1] in '$`"\\\n':
                if line[self.i + 1] != "\n":
                    text.append(line[self.i + 1])
                self.i += 2
            elif c == "$":
                if text:
                    self.add(Lit("".join(text), quoted=True))
                    text = []
                self.dollar(quoted=True)
            elif c == "`":
                raise unsupported("'`'")
            else:
                text.append(c)
                self.i += 1
        if text or len(self.parts) == parts_before:  # "" is an empty word of its own
            self.add(Lit("".join(text), quoted=True))

    def dollar(self, quoted: bool) -> None:
        """An expansion at ``$`` (or a literal ``$`` where none follows)."""
        line, start = self.line, self.i
        follower = line[start + 1:start + 2]
        if line.startswith("$((", start):
            self.add(self.arithmetic(quoted))
        elif follower == "(":
            raise unsupported("'$(' (command substitution)")
        elif follower == "{":
            end = line.find("}", start)
            inner = line[start + 2:end] if end > 0 else line[start + 2:]
            if end < 0 or not (inner == "?" or _NAME.fullmatch(inner)):
                raise unsupported(f"'${{{inner}' (only ${{NAME}} and ${{?}})" if end < 0 else
                                  f"'${{{inner}}}' (only ${{NAME}} and ${{?}})")
            self.add(Param(inner, quoted))
            self.i = end + 1
        elif follower == "?":
            self.add(Param("?", quoted))
            self.i += 2
        elif (match := _NAME.match(line, start + 1)) is not None:
            self.add(Param(match.group(), quoted))
            self.i = match.end()
        elif follower and (follower.isdigit() or follower in "@*#!$-"):
            raise unsupported(f"'${follower}'")
        else:
            if quoted:
                self.add(Lit("$", quoted=True))
            else:
                self.lit.append("$")
            self.i += 1

    def arithmetic(self, quoted: bool) -> Arith:
        line = self.line
        self.i += 3
        depth, parts, text = 0, [], []
        while True:
            if self.i >= len(line):
                raise ShellSyntaxError("syntax error: unterminated $((...))")
            c = line[self.i]
            if c == ")" and depth == 0:
                if not line.startswith("))", self.i):
                    raise ShellSyntaxError("syntax error: unterminated $((...))")
                self.i += 2
                break
            if c in "'\"`\\":
                raise unsupported(f"'{c}' inside $((...))")
            if c == "$":
                follower = line[self.i + 1:self.i + 2]
                match = _NAME.match(line, self.i + 1)
                if follower == "?":
                    name, end = "?", self.i + 2
                elif follower == "{" and re.match(r"\{([A-Za-z_][A-Za-z0-9_]*|\?)\}", line[self.i + 1:]):
                    name = line[self.i + 2:line.index("}", self.i)]
                    end = line.index("}", self.i) + 1
                elif match is not None:
                    name, end = match.group(), match.end()
                else:
                    raise unsupported(f"'${follower}' inside $((...))")
                if text:
                    parts.append(Lit("".join(text)))
                    text = []
                parts.append(Param(name))
                self.i = end
                continue
            depth += {"(": 1, ")": -1}.get(c, 0)
            text.append(c)
            self.i += 1
        if text:
            parts.append(Lit("".join(text)))
        return Arith(tuple(parts), quoted)


# --- parsing ------------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, tokens: list[tuple[str, object]]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> tuple[str, object] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def is_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def is_reserved(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].plain() in words

    def unexpected(self) -> ShellSyntaxError:
        token = self.peek()
        if token is None:
            return ShellSyntaxError("syntax error: unexpected end of line")
        text = "newline" if token[1] == "\n" else token[1].plain() if token[0] == "word" else token[1]
        return ShellSyntaxError(f"syntax error: '{text}' unexpected")

    def newlines(self) -> None:
        while self.is_op("\n"):
            self.i += 1

    def script(self, until: tuple[str, ...] = ()) -> Script:
        items: list[AndOr] = []
        self.newlines()
        while self.peek() is not None and not self.is_reserved(*until):
            items.append(self.and_or())
            if self.is_op(";", "\n"):
                self.i += 1
                self.newlines()
            elif self.is_op("&"):
                raise unsupported("'&' (background jobs)")
            elif self.peek() is not None and not self.is_reserved(*until):
                raise self.unexpected()
        return tuple(items)

    def and_or(self) -> AndOr:
        first, rest = self.pipeline(), []
        while self.is_op("&&", "||"):
            op = self.peek()[1]
            self.i += 1
            self.newlines()
            rest.append((op, self.pipeline()))
        return AndOr(first, tuple(rest))

    def pipeline(self) -> Pipeline:
        commands = [self.command()]
        while self.is_op("|"):
            self.i += 1
            self.newlines()
            commands.append(self.command())
        return Pipeline(tuple(commands))

    def command(self) -> Command:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in ("&", "(", ")", ";;", "<<", "<>", ">|", "&>"):
            raise unsupported(f"'{token[1]}'") if token[1] != ")" else self.unexpected()
        if token is not None and token[0] == "word" and token[1].plain() in RESERVED_WORDS:
            word = token[1].plain()
            if word == "for":
                return self.for_loop()
            if word in ("do", "done", "in"):
                raise self.unexpected()
            raise unsupported(f"reserved word '{word}'")
        return self.simple()

    def for_loop(self) -> ForLoop:
        self.i += 1
        token = self.peek()
        name = token[1].plain() if token is not None and token[0] == "word" else None
        if name is None or not _NAME.fullmatch(name):
            raise ShellSyntaxError("syntax error: for: expected a variable name" if name is None else
                                   f"syntax error: for: '{name}' is not a valid variable name")
        self.i += 1
        self.newlines()
        items: list[Word] = []
        if self.is_reserved("in"):
            self.i += 1
            while (token := self.peek()) is not None and token[0] == "word":
                items.append(token[1])
                self.i += 1
            if not self.is_op(";", "\n"):
                raise self.unexpected()
            self.i += 1
        elif self.is_op(";"):
            self.i += 1
        self.newlines()
        if not self.is_reserved("do"):
            raise self.unexpected()
        self.i += 1
        body = self.script(until=("done",))
        if not self.is_reserved("done"):
            raise ShellSyntaxError("syntax error: 'for' without its 'done'")
        if not body:
            raise ShellSyntaxError("syntax error: 'done' unexpected")
        self.i += 1
        return ForLoop(name, tuple(items), body, self.redirects())

    def redirects(self) -> tuple[Redirect, ...]:
        found = []
        while (redirect := self.redirect()) is not None:
            found.append(redirect)
        return tuple(found)

    def redirect(self) -> Redirect | None:
        token = self.peek()
        fd = None
        if token is not None and token[0] == "io":
            fd = token[1]
            self.i += 1
            token = self.peek()
        if token is None or token[0] != "op" or token[1] not in (">", ">>", "<", ">&", "<&", "<<", "<>", ">|"):
            if fd is not None:
                raise self.unexpected()
            return None
        op = token[1]
        if op in ("<<", "<>", ">|"):
            raise unsupported(f"'{op}'")
        self.i += 1
        target = self.peek()
        if target is None or target[0] != "word":
            raise self.unexpected()
        self.i += 1
        fd = (0 if op in ("<", "<&") else 1) if fd is None else fd
        if op in (">&", "<&"):
            number = target[1].plain()
            if fd == 0 or number not in ("1", "2"):
                raise unsupported(f"'{fd}{op}{number if number is not None else '...'}' (only 1>&2 and 2>&1)")
            return Redirect(fd, ">&", int(number))
        if (op == "<") != (fd == 0):
            raise unsupported(f"'{fd}{op}' (input from descriptor 0, output to 1 or 2)")
        return Redirect(fd, op, target[1])

    def simple(self) -> Simple:
        assignments, words, redirects = [], [], []
        while True:
            redirect = self.redirect()
            if redirect is not None:
                redirects.append(redirect)
                continue
            token = self.peek()
            if token is None or token[0] != "word":
                break
            word = token[1]
            first = word.parts[0]
            match = _ASSIGNMENT.match(first.text) if isinstance(first, Lit) and not first.quoted else None
            if not words and match is not None:
                rest = first.text[match.end():]
                assignments.append((match.group(1), Word(((Lit(rest),) if rest else ()) + word.parts[1:])))
            else:
                words.append(word)
            self.i += 1
        if assignments and words:
            raise unsupported(f"variable assignment before a command ('{assignments[0][0]}=...')")
        if not (assignments or words or redirects):
            token = self.peek()
            if token is not None and token[0] == "op" and token[1] in ("&", "(", ";;"):
                raise unsupported(f"'{token[1]}'")
            raise self.unexpected()
        return Simple(tuple(assignments), tuple(words), tuple(redirects))


def parse(line: str) -> Script:
    """The script ``line`` holds (an empty line, or only a comment, is an empty script); ShellSyntaxError for
    anything outside the supported forms, before anything runs."""
    parser = _Parser(_Lexer(line).run())
    script = parser.script()
    if parser.peek() is not None:
        raise parser.unexpected()
    return script
