"""The emulated phone's ``/system/bin/sh``: runs one command line with the phone's commands and programs.

Syntax: :mod:`devicefarm.emulator.shell_syntax` (its ``SUPPORTED_FORMS``); a line outside it prints
``/system/bin/sh: unsupported syntax: ... (the emulated shell supports ...)`` or ``syntax error: ...`` and
exits 2 without running anything. Semantics follow mksh: ``&&``/``||`` by exit status, ``$?`` the last
pipeline's status; a pipeline's status is its last command's, and each command's standard output feeds the
next one's standard input (run one after the other, the output held in memory); standard error is never
piped. Redirections open sandbox files (``/dev/null`` too); one that fails prints ``can't create PATH:
REASON`` (or ``can't open``) and the command does not run (status 1). An arithmetic error
(``1/0: zero divisor``) ends the line with status 1, as it ends a non-interactive mksh. Variables are set
by ``NAME=VALUE`` and ``for``; an unset one is empty. ``exit [N]`` ends the line. Command words:

- ``exit [N]`` (ends the line), and the commands of :data:`devicefarm.emulator.commands.COMMANDS` and
  :data:`devicefarm.emulator.text_commands.TEXT_COMMANDS`;
- ``taskset MASK CMD [ARGS...]``: ``MASK`` is hex; it must be non-zero and name only possible CPUs, else
  ``taskset: sched_setaffinity: Invalid argument`` and exit 1; the ``(mask, command line)`` is logged;
- a path (a word with ``/``): an executable regular file whose name starts with ``benchmark_model`` runs the
  emulated benchmark tool (which logs on standard error, as TFLite's tools do); a file without execute
  permission gives ``can't execute: Permission denied`` (126); another executable gives ``can't execute:
  Exec format error`` (126: only the benchmark tool can run here); a missing one ``inaccessible or not
  found`` (127);
- anything else: ``/system/bin/sh: NAME: inaccessible or not found``, exit 127.

No host shell or program is ever run, and every path goes through the phone's sandbox.
"""

from __future__ import annotations

import shlex
from contextlib import ExitStack

from devicefarm.emulator.benchmark_tool import PROGRAM_PREFIX, run_benchmark_model
from devicefarm.emulator.commands import COMMANDS
from devicefarm.emulator.sandbox import SandboxError, os_reason
from devicefarm.emulator.shell_arith import ArithError, parse_number
from devicefarm.emulator.shell_expand import expand, expand_text
from devicefarm.emulator.shell_syntax import AndOr, ForLoop, Pipeline, Redirect, Script, ShellSyntaxError, Simple, parse
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.text_commands import TEXT_COMMANDS
from devicefarm.emulator.stdio import CollectedOutput, FileOutput, Input, NullOutput, Output, Stdio

SH = "/system/bin/sh"
DEV_NULL = "/dev/null"
STATUS_SYNTAX = 2
STATUS_CANNOT_EXECUTE = 126
STATUS_NOT_FOUND = 127

ALL_COMMANDS = {**COMMANDS, **TEXT_COMMANDS}

__all__ = ["ALL_COMMANDS", "CollectedOutput", "PhoneShell", "SH"]


class _Exit(Exception):
    """``exit`` (or an expansion error) ends the whole line with ``status``."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _RedirectFailed(Exception):
    """A redirection's file could not be opened; the message is what the shell prints after its name."""


class PhoneShell:
    """Runs command lines against one phone's state; variables live as long as this shell."""

    def __init__(self, state: PhoneState):
        self.state = state
        self.variables: dict[str, str] = {}
        self.status = 0

    def lookup(self, name: str) -> str:
        return str(self.status) if name == "?" else self.variables.get(name, "")

    def run(self, line: str, out: Output, err: Output | None = None, stdin: Input | None = None) -> int:
        """Run ``line``; standard output to ``out``, standard error to ``err`` (default: ``out`` too, merged as
        ADB's shell protocol v1 merges them), standard input from ``stdin`` (default: none). The exit status."""
        io = Stdio(out, out if err is None else err, Input() if stdin is None else stdin)
        try:
            script = parse(line)
        except ShellSyntaxError as exc:
            io.err.write(f"{SH}: {exc}\n")
            return STATUS_SYNTAX
        try:
            return self._script(script, io)
        except _Exit as done:
            self.status = done.status
        except _ExpansionFailed as exc:
            io.err.write(f"{SH}: {exc}\n")
            self.status = 1
        finally:
            io.flush()
        return self.status

    # --- structure ------------------------------------------------------------------------------------------
    def _script(self, script: Script, io: Stdio) -> int:
        for and_or in script:
            self._and_or(and_or, io)
        return self.status

    def _and_or(self, and_or: AndOr, io: Stdio) -> None:
        self.status = self._pipeline(and_or.first, io)
        for op, pipeline in and_or.rest:
            if (op == "&&") == (self.status == 0):
                self.status = self._pipeline(pipeline, io)

    def _pipeline(self, pipeline: Pipeline, io: Stdio) -> int:
        stdin, status = io.stdin, 0
        for index, command in enumerate(pipeline.commands):
            last = index == len(pipeline.commands) - 1
            sink = io.out if last else CollectedOutput()
            stage = io.replace(out=sink, stdin=stdin)
            if len(pipeline.commands) == 1:
                status = self._command(command, stage)
            else:  # each part of a pipeline is a subshell of its own: exit ends only that part
                try:
                    status = self._command(command, stage)
                except _Exit as done:
                    status = done.status
            io.flush()
            if not last:
                stdin = Input(bytes(sink.data))
        return status

    def _command(self, command: Simple | ForLoop, io: Stdio) -> int:
        with ExitStack() as files:
            try:
                io = self._redirected(command.redirects, io, files)
            except _RedirectFailed as exc:
                io.err.write(f"{SH}: {exc}\n")
                return 1
            if isinstance(command, ForLoop):
                return self._for(command, io)
            return self._simple(command, io)

    def _for(self, loop: ForLoop, io: Stdio) -> int:
        items = [field for word in loop.items for field in self._expand(word)]
        if not items:
            return 0
        for item in items:
            self.variables[loop.name] = item
            self._script(loop.body, io)
        return self.status

    def _simple(self, command: Simple, io: Stdio) -> int:
        if not command.words:
            for name, word in command.assignments:
                self.variables[name] = self._expand_text(word)
            return 0
        argv = [field for word in command.words for field in self._expand(word)]
        return self.execute(argv, io) if argv else 0

    # --- expansion and redirection --------------------------------------------------------------------------
    def _expand(self, word) -> list[str]:
        try:
            return expand(word, self.lookup)
        except ArithError as exc:
            raise _ExpansionFailed(str(exc)) from exc

    def _expand_text(self, word) -> str:
        try:
            return expand_text(word, self.lookup)
        except ArithError as exc:
            raise _ExpansionFailed(str(exc)) from exc

    def _redirected(self, redirects: tuple[Redirect, ...], io: Stdio, files: ExitStack) -> Stdio:
        streams: dict[int, object] = {0: io.stdin, 1: io.out, 2: io.err}
        for redirect in redirects:
            if redirect.op == ">&":
                streams[redirect.fd] = streams[redirect.target]
                continue
            path = self._expand_text(redirect.target)
            if redirect.op == "<":
                streams[0] = Input(self._read_for_input(path))
            elif path == DEV_NULL:
                streams[redirect.fd] = NullOutput()
            else:
                try:
                    host = self.state.sandbox.writable_host_path(path)
                    stream = files.enter_context(host.open("ab" if redirect.op == ">>" else "wb"))
                except (SandboxError, OSError) as exc:
                    raise _RedirectFailed(f"can't create {path}: {_reason(exc)}") from exc
                streams[redirect.fd] = FileOutput(stream)
        return Stdio(streams[1], streams[2], streams[0])

    def _read_for_input(self, path: str) -> bytes:
        if path == DEV_NULL:
            return b""
        self.state.refresh_files_for([path])
        try:
            return self.state.sandbox.host_path(path).read_bytes()
        except (SandboxError, OSError) as exc:
            raise _RedirectFailed(f"can't open {path}: {_reason(exc)}") from exc

    # --- commands -------------------------------------------------------------------------------------------
    def execute(self, argv: list[str], io: Stdio, cpu_mask: int | None = None) -> int:
        """Run one simple command (already expanded); its exit status."""
        name = argv[0]
        if name == "exit":
            raise _Exit(self._exit_status(argv[1:], io))
        if name == "taskset":
            return self._taskset(argv[1:], io)
        self.state.refresh_files_for(argv[1:])  # sysfs values are current when a command reads them
        if "/" in name:
            return self._exec_file(argv, io, cpu_mask)
        if name in ALL_COMMANDS:
            return ALL_COMMANDS[name](self.state, io, argv[1:])
        io.err.write(f"{SH}: {name}: inaccessible or not found\n")
        return STATUS_NOT_FOUND

    def _exit_status(self, args: list[str], io: Stdio) -> int:
        if not args:
            return self.status
        value = parse_number(args[0].lstrip("-")) if args[0].lstrip("-") else None
        if value is None:
            io.err.write(f"{SH}: exit: {args[0]}: bad number\n")
            return 1
        return (-value if args[0].startswith("-") else value) & 0xFF

    def _taskset(self, args: list[str], io: Stdio) -> int:
        if len(args) < 2 or args[0].startswith("-"):
            io.err.write("usage: taskset MASK COMMAND [ARGS...]\n")
            return 1
        try:
            mask = int(args[0], 16)
        except ValueError:
            io.err.write(f"taskset: bad mask '{args[0]}'\n")
            return 1
        possible = (1 << self.state.profile.num_cpus) - 1
        if mask <= 0 or mask & ~possible:
            io.err.write("taskset: sched_setaffinity: Invalid argument\n")
            return 1
        self.state.taskset_log.append((mask, shlex.join(args[1:])))
        return self.execute(args[1:], io, cpu_mask=mask)

    def _exec_file(self, argv: list[str], io: Stdio, cpu_mask: int | None) -> int:
        path = argv[0]
        try:
            host = self.state.sandbox.host_path(path)
        except SandboxError:
            host = None
        if host is None or not host.exists():
            io.err.write(f"{SH}: {path}: inaccessible or not found\n")
            return STATUS_NOT_FOUND
        if host.is_dir():
            io.err.write(f"{SH}: {path}: can't execute: Is a directory\n")
            return STATUS_CANNOT_EXECUTE
        if not self.state.sandbox.is_executable(host):
            io.err.write(f"{SH}: {path}: can't execute: Permission denied\n")
            return STATUS_CANNOT_EXECUTE
        if not host.name.startswith(PROGRAM_PREFIX):
            io.err.write(f"{SH}: {path}: can't execute: Exec format error\n")
            return STATUS_CANNOT_EXECUTE
        return run_benchmark_model(argv[1:], state=self.state, out=io.err, cpu_mask=cpu_mask)


class _ExpansionFailed(Exception):
    """An expansion mksh refuses (an arithmetic error): the line ends with status 1."""


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, SandboxError) else os_reason(exc)
