"""The emulated phone's file system: device paths mapped into a host directory, with the shell user's rights.

Device paths are absolute (``/data/local/tmp/m.tflite``) or relative to a working directory. A ``..`` that
would climb above ``/`` is refused instead of being folded into ``/``, so no path reaches outside the root.
Like the ``shell`` user on a real phone, clients may create, change and delete files only inside
:data:`WRITABLE_DIRS`; everything else (``/sys``, ``/proc``) is read-only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

WRITABLE_DIRS = ("/data/local/tmp", "/sdcard")


class SandboxError(ValueError):
    """A device path that cannot be used: ``reason`` is the message a phone would print after the path."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def os_reason(exc: OSError) -> str:
    """The phone's wording for an ``OSError`` (``No such file or directory``, ``Is a directory``, ...)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


class Sandbox:
    """Maps device paths to files under ``root`` (a host directory that must exist)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"sandbox root {self.root} is not a directory")

    def device_path(self, path: str, cwd: str = "/") -> str:
        """``path`` as a normalized absolute device path; ``SandboxError`` if it is empty or leaves ``/``."""
        if not path:
            raise SandboxError(path, "No such file or directory")
        if "\0" in path:
            raise SandboxError(path, "Invalid argument")
        joined = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
        parts: list[str] = []
        for part in joined.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise SandboxError(path, "'..' leaves the root directory")
                parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def host_path(self, path: str, cwd: str = "/") -> Path:
        """The host file behind a device path (it may not exist); never outside the root."""
        device = self.device_path(path, cwd)
        host = self.root.joinpath(*device.split("/")[1:])
        real = Path(os.path.realpath(host))
        if real != self.root and self.root not in real.parents:
            raise SandboxError(path, "Permission denied")
        return host

    def writable_host_path(self, path: str, cwd: str = "/") -> Path:
        """Like :meth:`host_path`, but ``SandboxError("Permission denied")`` outside :data:`WRITABLE_DIRS`."""
        device = self.device_path(path, cwd)
        if not any(device.startswith(directory + "/") for directory in WRITABLE_DIRS):
            raise SandboxError(path, "Permission denied")
        return self.host_path(device)

    def to_device_path(self, host: Path) -> str:
        """The device path of a host file under the root."""
        relative = Path(host).relative_to(self.root)
        return "/" + "/".join(relative.parts)

    @staticmethod
    def is_executable(host: Path) -> bool:
        """Whether a regular file has any execute bit set."""
        try:
            mode = host.stat().st_mode
        except FileNotFoundError:
            return False
        return stat.S_ISREG(mode) and bool(mode & 0o111)

    @staticmethod
    def set_mode(host: Path, mode: int) -> None:
        """Apply a device permission mode (``& 0o777``); the owner keeps read and write (and search, for a
        directory) so the emulator can still manage the file."""
        keep = stat.S_IRWXU if host.is_dir() else stat.S_IRUSR | stat.S_IWUSR
        os.chmod(host, (mode & 0o777) | keep)
