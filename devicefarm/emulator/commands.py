"""The emulated phone's commands other than program execution (toybox-style output and error messages).

Every command is ``fn(state, io, args) -> exit status``; ``io`` is a :class:`~devicefarm.emulator.stdio.Stdio`
(``io.write`` standard output, ``io.err.write`` standard error, ``io.read_stdin()``). Errors go to standard
error as ``NAME: PATH: REASON`` (``REASON`` as ``strerror`` words it) and return 1. Paths are relative to
``/``. The text filters (``grep``, ``head``, ``tail``, ``wc``) are :mod:`devicefarm.emulator.text_commands`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from devicefarm.emulator.dumpsys import battery_report, thermal_report
from devicefarm.emulator.sandbox import WRITABLE_DIRS, SandboxError, os_reason
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.stdio import Stdio

Handler = Callable[[PhoneState, Stdio, list], int]
_SYMBOLIC_MODE = re.compile(r"^([ugoa]*)([-+=])([rwx]*)$")
_WHO_BITS = {"u": 0o700, "g": 0o070, "o": 0o007}
_PERM_BITS = {"r": 0o444, "w": 0o222, "x": 0o111}
_STAT_FORMAT = re.compile(r"%(.)")


def _error(out: Stdio, name: str, path: str, reason: str) -> int:
    out.err.write(f"{name}: {path}: {reason}\n")
    return 1


def _failure(out: Stdio, name: str, path: str, exc: Exception) -> int:
    """``_error`` with the reason a sandbox refusal or an OS error gives, as toybox words it."""
    return _error(out, name, path, exc.reason if isinstance(exc, SandboxError) else os_reason(exc))


def _split_options(args: list[str], allowed: str) -> tuple[set[str], list[str]] | str:
    """Leading ``-xyz`` options (letters from ``allowed``) and the operands, or the first bad option."""
    options: set[str] = set()
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        if args[index] == "--":
            index += 1
            break
        for letter in args[index][1:]:
            if letter not in allowed:
                return args[index]
            options.add(letter)
        index += 1
    return options, args[index:]


def _usage(out: Stdio, name: str, bad: str) -> int:
    out.err.write(f"{name}: unsupported option '{bad}'\n")
    return 1


def getprop(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """No arguments: every ``[key]: [value]`` line, sorted; ``KEY [DEFAULT]``: the value (or default) alone."""
    properties = state.properties()
    if not args:
        out.write("".join(f"[{key}]: [{value}]\n" for key, value in sorted(properties.items())))
    elif len(args) <= 2:
        out.write(properties.get(args[0], args[1] if len(args) == 2 else "") + "\n")
    else:
        out.err.write("getprop: usage: getprop [KEY [DEFAULT]]\n")
        return 1
    return 0


def cat(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """Each file's bytes in turn; no operand, or ``-``, is standard input."""
    status = 0
    for path in args or ["-"]:
        if path == "-":
            out.write(out.read_stdin())
            continue
        try:
            out.write(state.sandbox.host_path(path).read_bytes())
        except (SandboxError, OSError) as exc:
            status = _failure(out, "cat", path, exc)
    return status


def _owner(state: PhoneState, host) -> str:
    """Who owns a file as the phone shows it: ``shell`` in the shell user's writable directories, else ``root``."""
    device = state.sandbox.to_device_path(host)
    return "shell" if any(device == d or device.startswith(d + "/") for d in WRITABLE_DIRS) else "root"


def _long_lines(state: PhoneState, entries: list[tuple[str, object]]) -> list[str]:
    """toybox's ``ls -l`` lines for ``(name, host path)`` entries: mode, links, owner, group, size, modification
    time (UTC, minutes), name (``-> TARGET`` for a link); the numbers right-aligned, the names left-aligned."""
    rows = []
    for name, host in entries:
        info = os.lstat(host)
        owner = _owner(state, host)
        shown = name
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(host)
            inside = os.path.isabs(target) and Path(target).is_relative_to(state.sandbox.root)
            shown += f" -> {state.sandbox.to_device_path(Path(target)) if inside else target}"
        when = datetime.fromtimestamp(info.st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M")
        rows.append((stat.filemode(info.st_mode), str(info.st_nlink), owner, owner, str(info.st_size), when, shown))
    widths = [max((len(row[column]) for row in rows), default=0) for column in range(5)]
    return [f"{mode} {links:>{widths[1]}} {owner:<{widths[2]}} {group:<{widths[3]}} {size:>{widths[4]}} {when} {name}"
            for mode, links, owner, group, size, when, name in rows]


def ls(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """Names one per line, sorted, dot-files hidden (``-a``: shown, with ``.`` and ``..``); a file operand, or
    any operand with ``-d``, prints itself; several operands get ``PATH:`` headings. ``-l``: toybox's long
    format (:func:`_long_lines`), a directory's entries after ``total N`` (1 KiB blocks). ``-1`` is the
    default already (one name per line)."""
    parsed = _split_options(args, "lad1")
    if isinstance(parsed, str):
        return _usage(out, "ls", parsed)
    options, paths = parsed
    paths = paths or ["/"]
    status = 0
    for number, path in enumerate(paths):
        try:
            host = state.sandbox.host_path(path)
            if not host.is_dir() or "d" in options:
                os.lstat(host)
                out.write("\n".join(_long_lines(state, [(path, host)]) if "l" in options else [path]) + "\n")
                continue
            names = sorted(name for name in os.listdir(host) if "a" in options or not name.startswith("."))
            if "a" in options:
                names = [".", "..", *names] if host != state.sandbox.root else [".", *names]
            entries = [(name, host if name == "." else host.parent if name == ".." else host / name) for name in names]
            lines = _long_lines(state, entries) if "l" in options else names
        except (SandboxError, OSError) as exc:
            status = _failure(out, "ls", path, exc)
            continue
        heading = (("\n" if number else "") + f"{path}:\n") if len(paths) > 1 else ""
        total = f"total {sum(os.lstat(host_path).st_blocks for _, host_path in entries) // 2}\n" if "l" in options \
            else ""
        out.write(heading + total + "".join(line + "\n" for line in lines))
    return status


def echo(state: PhoneState, out: Stdio, args: list[str]) -> int:
    newline = "\n"
    if args and args[0] == "-n":
        args, newline = args[1:], ""
    out.write(" ".join(args) + newline)
    return 0


def mkdir(state: PhoneState, out: Stdio, args: list[str]) -> int:
    parsed = _split_options(args, "p")
    if isinstance(parsed, str):
        return _usage(out, "mkdir", parsed)
    options, paths = parsed
    status = 0
    for path in paths:
        try:
            host = state.sandbox.host_path(path)
            if "p" in options and host.is_dir():
                continue
            host = state.sandbox.writable_host_path(path)
            host.mkdir(parents="p" in options)
        except (SandboxError, OSError) as exc:
            status = _failure(out, "mkdir", f"'{path}'", exc)
    return status


def _new_mode(spec: str, current: int) -> int | None:
    """The permission bits after applying an octal or symbolic (``u+x,go-w``) mode; ``None`` if invalid."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8) & 0o777
    mode = current & 0o777
    for clause in spec.split(","):
        match = _SYMBOLIC_MODE.match(clause)
        if not match:
            return None
        who, op, perms = match.groups()
        scope = sum(_WHO_BITS[w] for w in set(who.replace("a", "ugo"))) if who else 0o777
        bits = sum(_PERM_BITS[p] for p in set(perms)) & scope
        mode = {"+": mode | bits, "-": mode & ~bits, "=": (mode & ~scope) | bits}[op]
    return mode


def chmod(state: PhoneState, out: Stdio, args: list[str]) -> int:
    if len(args) < 2:
        out.err.write("chmod: usage: chmod MODE FILE...\n")
        return 1
    spec, paths = args[0], args[1:]
    status = 0
    for path in paths:
        try:
            host = state.sandbox.writable_host_path(path)
            mode = _new_mode(spec, host.stat().st_mode)
            if mode is None:
                out.err.write(f"chmod: bad mode '{spec}'\n")
                return 1
            state.sandbox.set_mode(host, mode)
        except (SandboxError, OSError) as exc:
            status = _failure(out, "chmod", path, exc)
    return status


def rm(state: PhoneState, out: Stdio, args: list[str]) -> int:
    parsed = _split_options(args, "frR")
    if isinstance(parsed, str):
        return _usage(out, "rm", parsed)
    options, paths = parsed
    force, recursive = "f" in options, bool(options & {"r", "R"})
    status = 0
    for path in paths:
        try:
            host = state.sandbox.host_path(path)
            if not os.path.lexists(host):
                if not force:
                    status = _error(out, "rm", path, "No such file or directory")
                continue
            host = state.sandbox.writable_host_path(path)
            if host.is_dir() and not host.is_symlink():
                if not recursive:
                    status = _error(out, "rm", path, "Is a directory")
                    continue
                shutil.rmtree(host)
            else:
                host.unlink()
        except (SandboxError, OSError) as exc:
            status = _failure(out, "rm", path, exc)
    return status


def touch(state: PhoneState, out: Stdio, args: list[str]) -> int:
    status = 0
    for path in args:
        try:
            state.sandbox.writable_host_path(path).touch()
        except (SandboxError, OSError) as exc:
            status = _failure(out, "touch", f"'{path}'", exc)
    return status


def sha256sum(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """``<64 hex digits>  <path as given>`` per file (no operand, or ``-``: standard input)."""
    status = 0
    for path in args or ["-"]:
        if path == "-":
            out.write(f"{hashlib.sha256(out.read_stdin()).hexdigest()}  -\n")
            continue
        try:
            digest = hashlib.sha256()
            with state.sandbox.host_path(path).open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            out.write(f"{digest.hexdigest()}  {path}\n")
        except (SandboxError, OSError) as exc:
            status = _failure(out, "sha256sum", path, exc)
    return status


def stat_command(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """``stat -c FORMAT FILE...`` with ``%s`` (size), ``%a`` (octal permissions), ``%n`` (name), ``%Y``
    (mtime, seconds) and ``%%``."""
    if len(args) < 3 or args[0] != "-c":
        out.err.write("stat: usage: stat -c FORMAT FILE...\n")
        return 1
    fmt, paths = args[1], args[2:]
    unknown = [code for code in _STAT_FORMAT.findall(fmt) if code not in "sanY%"]
    if unknown:
        out.err.write(f"stat: unsupported format sequence '%{unknown[0]}'\n")
        return 1
    status = 0
    for path in paths:
        try:
            info = state.sandbox.host_path(path).stat()
        except (SandboxError, OSError) as exc:
            status = _failure(out, "stat", f"'{path}'", exc)
            continue
        fields = {"s": str(info.st_size), "a": f"{stat.S_IMODE(info.st_mode) & 0o777:o}", "n": path,
                  "Y": str(int(info.st_mtime)), "%": "%"}
        out.write(_STAT_FORMAT.sub(lambda match: fields[match.group(1)], fmt) + "\n")
    return status


def id_command(state: PhoneState, out: Stdio, args: list[str]) -> int:
    out.write("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
              "1015(sdcard_rw),1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),"
              "3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) "
              "context=u:r:shell:s0\n")
    return 0


def uname(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """``uname`` / ``uname -s``: ``Linux``; ``uname -m``: ``aarch64``."""
    answers = {(): "Linux", ("-s",): "Linux", ("-m",): "aarch64"}
    if tuple(args) not in answers:
        return _usage(out, "uname", " ".join(args))
    out.write(answers[tuple(args)] + "\n")
    return 0


def dumpsys(state: PhoneState, out: Stdio, args: list[str]) -> int:
    reports = {"battery": battery_report, "thermalservice": thermal_report}
    if len(args) != 1 or args[0] not in reports:
        out.err.write(f"Can't find service: {' '.join(args)}\n")
        return 0
    out.write(reports[args[0]](state))
    return 0


FIXED_PERFORMANCE_REFUSED = ("Failed to set FIXED_PERFORMANCE mode\n"
                             "This is likely because Power HAL AIDL is not implemented on this device\n")


def cmd(state: PhoneState, out: Stdio, args: list[str]) -> int:
    """Only ``cmd power set-fixed-performance-mode-enabled true|false``: records the mode and prints nothing,
    or, on a profile without the mode, prints what Android's power shell command prints then and exits 255."""
    if not args or args[0] != "power":
        out.err.write(f"cmd: Can't find service: {args[0] if args else ''}\n")
        return 20
    if len(args) != 3 or args[1] != "set-fixed-performance-mode-enabled" or args[2] not in ("true", "false"):
        out.err.write(f"cmd power: unsupported arguments: {' '.join(args[1:])} (expected "
                      "set-fixed-performance-mode-enabled true|false)\n")
        return 255
    if not state.profile.fixed_performance_mode:
        out.err.write(FIXED_PERFORMANCE_REFUSED)
        return 255
    state.fixed_performance_mode = args[2] == "true"
    return 0


def true(state: PhoneState, out: Stdio, args: list[str]) -> int:
    return 0


def false(state: PhoneState, out: Stdio, args: list[str]) -> int:
    return 1


COMMANDS: dict[str, Handler] = {
    "cat": cat, "chmod": chmod, "cmd": cmd, "dumpsys": dumpsys, "echo": echo, "false": false, "getprop": getprop,
    "id": id_command, "ls": ls, "mkdir": mkdir, "rm": rm, "sha256sum": sha256sum, "stat": stat_command,
    "touch": touch, "true": true, "uname": uname,
}
