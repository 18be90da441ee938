"""The emulated phone's text filters, toybox-style: ``grep``, ``head``, ``tail`` and ``wc``.

Each reads its files (through the sandbox) or, without one or for ``-``, standard input, so they work at
the end of a pipe (``dumpsys battery | grep level``). Output follows toybox: ``grep`` prefixes
``FILE:`` when given several files and ``N:`` with ``-n``; ``head``/``tail`` print ``==> FILE <==``
headings for several files; ``wc`` prints the chosen counts (lines, words, bytes) separated by single
spaces, then `` FILE`` when files were named, and a ``total`` line for several.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from devicefarm.emulator.commands import _failure, _split_options, _usage
from devicefarm.emulator.sandbox import SandboxError
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.stdio import Stdio

_POSIX_CLASSES = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
                  "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f"}


def _inputs(state: PhoneState, io: Stdio, name: str, paths: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """``(path, bytes)`` per operand (standard input for none or ``-``); ``bytes`` is None after the error
    was printed."""
    for path in paths or ["-"]:
        if path == "-":
            yield path, io.read_stdin()
            continue
        try:
            yield path, state.sandbox.host_path(path).read_bytes()
        except (SandboxError, OSError) as exc:
            _failure(io, name, path, exc)
            yield path, None


def posix_regex(pattern: str, extended: bool) -> str:
    """A POSIX basic (``extended=False``) or extended regular expression as Python's ``re`` reads it: in a
    basic one ``\\( \\) \\{ \\} \\| \\+ \\?`` are the operators and the bare characters literal;
    ``[[:digit:]]``-style classes become ranges."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            end = index + 1 + (pattern[index + 1:index + 2] == "^")
            end += pattern[end:end + 1] == "]"
            while end < len(pattern) and pattern[end] != "]":
                end += (pattern.find(":]", end) + 2 - end) if pattern.startswith("[:", end) else 1
            body = pattern[index + 1:end]
            body = re.sub(r"\[:(\w+):\]", lambda m: _POSIX_CLASSES.get(m.group(1), m.group(0)), body)
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = end + 1
        elif char == "\\" and index + 1 < len(pattern):
            follower = pattern[index + 1]
            out.append(follower if not extended and follower in "(){}|+?" else "\\" + follower)
            index += 2
        else:
            out.append("\\" + char if not extended and char in "(){}|+?" else char)
            index += 1
    return "".join(out)


def grep(state: PhoneState, io: Stdio, args: list[str]) -> int:
    """``grep [-EFivcnq] PATTERN [FILE...]``: matching lines; status 0 when a line matched, 1 when none did,
    2 on an error."""
    parsed = _split_options(args, "EFivcnq")
    if isinstance(parsed, str):
        _usage(io, "grep", parsed)
        return 2
    options, operands = parsed
    if not operands:
        io.err.write("grep: usage: grep [-EFivcnq] PATTERN [FILE...]\n")
        return 2
    text = operands[0]
    try:
        regex = re.compile(re.escape(text) if "F" in options else posix_regex(text, "E" in options),
                           re.IGNORECASE if "i" in options else 0)
    except re.error as exc:
        io.err.write(f"grep: bad regex '{text}': {exc}\n")
        return 2
    files, matched, failed = operands[1:], False, False
    for path, data in _inputs(state, io, "grep", files):
        if data is None:
            failed = True
            continue
        prefix = f"{path}:" if len(files) > 1 else ""
        count = 0
        for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), start=1):
            if bool(regex.search(line)) == ("v" in options):
                continue
            count += 1
            if not ({"c", "q"} & options):
                io.write(prefix + (f"{number}:" if "n" in options else "") + line + "\n")
        matched = matched or count > 0
        if "c" in options and "q" not in options:
            io.write(f"{prefix}{count}\n")
    return 2 if failed and not ("q" in options and matched) else 0 if matched else 1


def _line_count(io: Stdio, name: str, args: list[str]) -> tuple[int, list[str]] | int:
    """``-n N``, ``-nN`` or ``-N`` (default 10) and the operands, or the status after a usage error."""
    count, rest = 10, list(args)
    if rest and re.fullmatch(r"-\d+", rest[0]):
        return int(rest[0][1:]), rest[1:]
    if rest and rest[0].startswith("-n"):
        value = rest[0][2:] or (rest[1] if len(rest) > 1 else "")
        rest = rest[1:] if rest[0][2:] else rest[2:]
        if not value.isdigit():
            io.err.write(f"{name}: bad -n '{value}'\n")
            return 1
        return int(value), rest
    parsed = _split_options(rest, "")
    if isinstance(parsed, str):
        return _usage(io, name, parsed)
    return count, parsed[1]


def _ends(name: str, pick: Callable[[list[bytes], int], list[bytes]]):
    def command(state: PhoneState, io: Stdio, args: list[str]) -> int:
        parsed = _line_count(io, name, args)
        if isinstance(parsed, int):
            return parsed
        count, files = parsed
        status, shown = 0, 0
        for path, data in _inputs(state, io, name, files):
            if data is None:
                status = 1
                continue
            if len(files) > 1:
                io.write(("\n" if shown else "") + f"==> {path} <==\n")
            shown += 1
            io.write(b"".join(pick(data.splitlines(keepends=True), count)))
        return status

    command.__doc__ = f"``{name} [-n N | -N] [FILE...]``: the {'first' if name == 'head' else 'last'} N lines."
    return command


head = _ends("head", lambda lines, count: lines[:count])
tail = _ends("tail", lambda lines, count: lines[len(lines) - count:] if count else [])


def wc(state: PhoneState, io: Stdio, args: list[str]) -> int:
    """``wc [-lwc] [FILE...]``: lines, words and bytes (those chosen, in that order)."""
    parsed = _split_options(args, "lwc")
    if isinstance(parsed, str):
        return _usage(io, "wc", parsed)
    options, files = parsed
    chosen = [letter for letter in "lwc" if not options or letter in options]
    totals, status = {"l": 0, "w": 0, "c": 0}, 0
    for path, data in _inputs(state, io, "wc", files):
        if data is None:
            status = 1
            continue
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        for letter in totals:
            totals[letter] += counts[letter]
        io.write(" ".join(str(counts[letter]) for letter in chosen) + (f" {path}" if files else "") + "\n")
    if len(files) > 1:
        io.write(" ".join(str(totals[letter]) for letter in chosen) + " total\n")
    return status


TEXT_COMMANDS = {"grep": grep, "head": head, "tail": tail, "wc": wc}
