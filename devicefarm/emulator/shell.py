"""The emulated phone's ``/system/bin/sh``: runs one command line with the phone's commands and programs.

Syntax (see :mod:`devicefarm.emulator.shell_syntax`): simple commands joined by ``;``, ``&&``, ``||``, and
``$?``. Anything else prints ``/system/bin/sh: unsupported syntax: ...`` (or ``syntax error: ...``) and
exits 2 without running anything. Command words:

- the commands of :data:`devicefarm.emulator.commands.COMMANDS`;
- ``taskset MASK CMD [ARGS...]``: ``MASK`` is hex; it must be non-zero and name only possible CPUs, else
  ``taskset: sched_setaffinity: Invalid argument`` and exit 1; the ``(mask, command line)`` is logged;
- a path (a word with ``/``): an executable regular file whose name starts with ``benchmark_model`` runs the
  emulated benchmark tool; a file without execute permission gives ``can't execute: Permission denied``
  (126); another executable gives ``can't execute: Exec format error`` (126: only the benchmark tool can
  run here); a missing one ``inaccessible or not found`` (127);
- anything else: ``/system/bin/sh: NAME: inaccessible or not found``, exit 127.
"""

from __future__ import annotations

import shlex

from devicefarm.emulator.benchmark_tool import PROGRAM_PREFIX, run_benchmark_model
from devicefarm.emulator.commands import COMMANDS, Output
from devicefarm.emulator.sandbox import SandboxError
from devicefarm.emulator.shell_syntax import ShellSyntaxError, parse
from devicefarm.emulator.state import PhoneState

SH = "/system/bin/sh"
STATUS_SYNTAX = 2
STATUS_CANNOT_EXECUTE = 126
STATUS_NOT_FOUND = 127


class CollectedOutput:
    """An :class:`~devicefarm.emulator.commands.Output` that keeps everything written (``.data``, ``.text``)."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data: str | bytes) -> None:
        self.data += data.encode() if isinstance(data, str) else data

    def flush(self) -> None:
        return None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "backslashreplace")


class PhoneShell:
    """Runs command lines against one phone's state."""

    def __init__(self, state: PhoneState):
        self.state = state

    def run(self, line: str, out: Output) -> int:
        """Run ``line``, writing its output (stdout and stderr merged) to ``out``; the last exit status."""
        try:
            commands = parse(line)
        except ShellSyntaxError as exc:
            out.write(f"{SH}: {exc}\n")
            return STATUS_SYNTAX
        status = 0
        for command in commands:
            if (command.connector == "&&" and status != 0) or (command.connector == "||" and status == 0):
                continue
            status = self.execute([word.expand(status) for word in command.words], out)
            out.flush()
        return status

    def execute(self, argv: list[str], out: Output, cpu_mask: int | None = None) -> int:
        """Run one simple command (already expanded); its exit status."""
        name = argv[0]
        if name == "taskset":
            return self._taskset(argv[1:], out)
        self.state.refresh_files_for(argv[1:])  # sysfs values are current when a command reads them
        if "/" in name:
            return self._exec_file(argv, out, cpu_mask)
        if name in COMMANDS:
            return COMMANDS[name](self.state, out, argv[1:])
        out.write(f"{SH}: {name}: inaccessible or not found\n")
        return STATUS_NOT_FOUND

    def _taskset(self, args: list[str], out: Output) -> int:
        if len(args) < 2 or args[0].startswith("-"):
            out.write("usage: taskset MASK COMMAND [ARGS...]\n")
            return 1
        try:
            mask = int(args[0], 16)
        except ValueError:
            out.write(f"taskset: bad mask '{args[0]}'\n")
            return 1
        possible = (1 << self.state.profile.num_cpus) - 1
        if mask <= 0 or mask & ~possible:
            out.write("taskset: sched_setaffinity: Invalid argument\n")
            return 1
        self.state.taskset_log.append((mask, shlex.join(args[1:])))
        return self.execute(args[1:], out, cpu_mask=mask)

    def _exec_file(self, argv: list[str], out: Output, cpu_mask: int | None) -> int:
        path = argv[0]
        try:
            host = self.state.sandbox.host_path(path)
        except SandboxError:
            host = None
        if host is None or not host.exists():
            out.write(f"{SH}: {path}: inaccessible or not found\n")
            return STATUS_NOT_FOUND
        if host.is_dir():
            out.write(f"{SH}: {path}: can't execute: Is a directory\n")
            return STATUS_CANNOT_EXECUTE
        if not self.state.sandbox.is_executable(host):
            out.write(f"{SH}: {path}: can't execute: Permission denied\n")
            return STATUS_CANNOT_EXECUTE
        if not host.name.startswith(PROGRAM_PREFIX):
            out.write(f"{SH}: {path}: can't execute: Exec format error\n")
            return STATUS_CANNOT_EXECUTE
        return run_benchmark_model(argv[1:], state=self.state, out=out, cpu_mask=cpu_mask)
