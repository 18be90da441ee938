"""Standard streams of the emulated phone's commands: where output goes and where input comes from.

A command gets one :class:`Stdio`: ``write``/``flush`` are its standard output, ``err`` its standard error,
``read_stdin()`` all of its standard input. The shell wires them to the ADB stream (shell protocol v1
merges both outputs into one stream; v2 keeps them apart), to a pipe (a :class:`CollectedOutput` whose
bytes the next command reads), or to sandbox files (redirections).
"""

from __future__ import annotations

import threading
from typing import BinaryIO, Callable, Protocol


class Output(Protocol):
    def write(self, data: str | bytes) -> None: ...

    def flush(self) -> None: ...


def as_bytes(data: str | bytes) -> bytes:
    """Text as the phone writes it (UTF-8, undecodable bytes kept as they came)."""
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


class CollectedOutput:
    """An :class:`Output` that keeps everything written (``.data``, ``.text``): a pipe, or a test's screen."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data: str | bytes) -> None:
        self.data += as_bytes(data)

    def flush(self) -> None:
        return None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "backslashreplace")


class NullOutput:
    """``/dev/null``: everything written is dropped."""

    def write(self, data: str | bytes) -> None:
        return None

    def flush(self) -> None:
        return None


class FileOutput:
    """An open sandbox file written by a redirection (``> FILE``, ``>> FILE``)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def write(self, data: str | bytes) -> None:
        self._stream.write(as_bytes(data))

    def flush(self) -> None:
        self._stream.flush()


class Input:
    """Standard input read whole, once: the bytes of a pipe or a file, or what ``source()`` returns (which may
    wait, say, for the host to close its side of an ADB shell v2 stream). Later reads get nothing, as after
    end of file."""

    def __init__(self, data: bytes = b"", source: Callable[[], bytes] | None = None):
        self._data, self._source = data, source
        self._lock = threading.Lock()

    def read(self) -> bytes:
        with self._lock:
            if self._source is not None:
                self._data, self._source = self._source(), None
            data, self._data = self._data, b""
            return data


class Stdio:
    """A command's standard streams: ``write``/``flush`` are standard output, ``err`` standard error."""

    def __init__(self, out: Output, err: Output, stdin: Input):
        self.out, self.err, self.stdin = out, err, stdin

    def write(self, data: str | bytes) -> None:
        self.out.write(data)

    def flush(self) -> None:
        self.out.flush()
        self.err.flush()

    def read_stdin(self) -> bytes:
        return self.stdin.read()

    def replace(self, *, out: Output | None = None, err: Output | None = None, stdin: Input | None = None) -> "Stdio":
        return Stdio(self.out if out is None else out, self.err if err is None else err,
                     self.stdin if stdin is None else stdin)
