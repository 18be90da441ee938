"""The ``sync:`` service (AOSP ``SYNC.TXT``): STAT, LIST, SEND, RECV and QUIT on the phone's files.

Requests are ``<2I`` (id, length) plus ``length`` bytes of path, read across ``WRTE`` boundaries. Replies:

- ``STAT path`` -> ``STAT`` + ``<3I`` mode, size, mtime (all 0 when the path does not exist).
- ``LIST dir`` -> one ``DENT`` (``<5I`` id, mode, size, mtime, name length, then the name) per entry,
  ``.`` and ``..`` included as readdir returns them, then ``DONE`` with zero fields.
- ``SEND "path,mode"``, then ``DATA`` chunks (at most 64 KiB each) and ``DONE(mtime)`` -> the file is
  written (parents created, mode and mtime applied) and ``OKAY`` (id + 0) sent, or ``FAIL`` (id + length +
  message) after the rest of the upload has been read; a failed upload ends the service.
- ``RECV path`` -> ``DATA`` chunks then ``DONE``, or ``FAIL "No such file or directory"`` (or the error).
- ``QUIT`` -> the stream is closed.

A path that leaves ``/`` (``..``) or an upload outside the writable directories gets ``FAIL`` from SEND and
RECV; STAT and LIST have no failure reply in the protocol (clients read a fixed-size header), so there such a
path answers like a missing one: zeros, or an empty listing.
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
from pathlib import Path

from devicefarm.emulator.connection import Stream
from devicefarm.emulator.sandbox import SandboxError, os_reason
from devicefarm.emulator.state import PhoneState


def _id(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


ID_STAT, ID_LIST, ID_SEND, ID_RECV = _id(b"STAT"), _id(b"LIST"), _id(b"SEND"), _id(b"RECV")
ID_DENT, ID_DONE, ID_DATA, ID_OKAY = _id(b"DENT"), _id(b"DONE"), _id(b"DATA"), _id(b"OKAY")
ID_FAIL, ID_QUIT = _id(b"FAIL"), _id(b"QUIT")
SYNC_DATA_MAX = 64 * 1024
MAX_PATH_LENGTH = 1024


class _SyncFailure(Exception):
    """A request that fails with ``FAIL``; ``fatal`` ends the service afterwards."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


def _u32(value: float) -> int:
    return int(value) & 0xFFFFFFFF


def _stat_fields(path) -> tuple[int, int, int]:
    info = os.stat(path)
    return _u32(info.st_mode), _u32(info.st_size), _u32(info.st_mtime)


class SyncService:
    """Serves sync requests on one stream until ``QUIT``, a fatal failure, or the host closes it."""

    def __init__(self, stream: Stream, state: PhoneState):
        self.stream, self.state = stream, state

    def run(self) -> None:
        """Answer requests until ``QUIT`` or a fatal failure; ``StreamClosed`` when the host closes first."""
        while True:
            request, length = struct.unpack("<2I", self.stream.read_exact(8))
            if request == ID_QUIT:
                return
            try:
                if request not in (ID_STAT, ID_LIST, ID_SEND, ID_RECV):
                    raise _SyncFailure(f"unknown sync command {struct.pack('<I', request)!r}", fatal=True)
                if length > MAX_PATH_LENGTH:
                    raise _SyncFailure(f"path length {length} exceeds {MAX_PATH_LENGTH}", fatal=True)
                path = self.stream.read_exact(length).decode("utf-8", "surrogateescape")
                self.state.refresh_files_for([path])
                {ID_STAT: self._stat, ID_LIST: self._list, ID_SEND: self._send, ID_RECV: self._recv}[request](path)
            except _SyncFailure as failure:
                message = str(failure).encode("utf-8", "surrogateescape")
                self.stream.write(struct.pack("<2I", ID_FAIL, len(message)) + message)
                if failure.fatal:
                    return

    def _host(self, path: str, writable: bool = False):
        try:
            sandbox = self.state.sandbox
            return sandbox.writable_host_path(path) if writable else sandbox.host_path(path)
        except SandboxError as exc:
            raise _SyncFailure(str(exc)) from None

    def _stat(self, path: str) -> None:
        try:
            fields = _stat_fields(self._host(path))
        except (_SyncFailure, OSError):
            fields = (0, 0, 0)
        self.stream.write(struct.pack("<4I", ID_STAT, *fields))

    def _list(self, path: str) -> None:
        entries = []
        try:
            host = self._host(path)
            names = [".", ".."] + sorted(os.listdir(host))
        except (_SyncFailure, OSError):
            names = []  # adbd sends just DONE for a directory it cannot open
        for name in names:
            try:
                parent = host if host == self.state.sandbox.root else host.parent  # "/.." is "/"
                mode, size, mtime = _stat_fields(os.path.join(host, name) if name != ".." else parent)
            except OSError:
                continue  # removed while listing
            encoded = name.encode("utf-8", "surrogateescape")
            entries.append(struct.pack("<5I", ID_DENT, mode, size, mtime, len(encoded)) + encoded)
        entries.append(struct.pack("<5I", ID_DONE, 0, 0, 0, 0))
        self.stream.write(b"".join(entries))

    def _read_upload(self, sink) -> int:
        """Copy ``DATA`` chunks to ``sink`` (or discard them if ``None``) until ``DONE``; its mtime."""
        while True:
            kind, length = struct.unpack("<2I", self.stream.read_exact(8))
            if kind == ID_DONE:
                return length
            if kind != ID_DATA:
                raise _SyncFailure(f"expected DATA or DONE during SEND, got {struct.pack('<I', kind)!r}", fatal=True)
            if length > SYNC_DATA_MAX:
                raise _SyncFailure(f"DATA chunk of {length} bytes exceeds {SYNC_DATA_MAX}", fatal=True)
            chunk = self.stream.read_exact(length)
            if sink is not None:
                sink.write(chunk)

    def _open_upload(self, spec: str) -> tuple[Path, int, int, str]:
        """Check a ``path,mode`` spec and create the hidden partial file: (host path, mode, fd, partial path)."""
        path, comma, mode_text = spec.rpartition(",")
        if not comma or not mode_text.isdigit():
            raise _SyncFailure(f"SEND expects 'path,mode', got {spec!r}")
        mode = int(mode_text)
        if stat.S_ISLNK(mode):
            raise _SyncFailure(f"{path}: symbolic links are not supported on this device")
        host = self._host(path, writable=True)
        if host.is_dir():
            raise _SyncFailure(f"couldn't create file: {path}: Is a directory")
        try:
            host.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(prefix=f".{host.name}.", suffix=".sync", dir=host.parent)
        except OSError as exc:
            raise _SyncFailure(f"couldn't create file: {path}: {os_reason(exc)}") from None
        return host, mode, handle, partial

    def _send(self, spec: str) -> None:
        try:
            host, mode, handle, partial = self._open_upload(spec)
        except _SyncFailure:
            self._read_upload(None)  # the host sends the data anyway; FAIL comes after it
            raise
        try:
            with os.fdopen(handle, "wb") as sink:
                mtime = self._read_upload(sink)
            self.state.sandbox.set_mode(Path(partial), mode)
            os.utime(partial, (mtime, mtime))
            os.replace(partial, host)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        self.stream.write(struct.pack("<2I", ID_OKAY, 0))

    def _recv(self, path: str) -> None:
        host = self._host(path)
        try:
            with open(host, "rb") as source:
                while chunk := source.read(SYNC_DATA_MAX):
                    self.stream.write(struct.pack("<2I", ID_DATA, len(chunk)) + chunk)
        except OSError as exc:
            raise _SyncFailure(os_reason(exc)) from None
        self.stream.write(struct.pack("<2I", ID_DONE, 0))
