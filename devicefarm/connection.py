"""One phone over ADB: quoted commands with exit codes, pushes, bounded timeouts, retries.

Every shell command is a list of arguments joined with :func:`shlex.join`, so no
argument (a file name, a flag value) can ever be read as shell syntax. ADB's
shell protocol v1 carries no exit status, so each command is followed by
``; echo __akd_tf_exit=$?`` and the status is read back from the output.

Transport failures (refused or dropped connections, timeouts, corrupt packets)
are retried with exponential backoff on a fresh connection; when the retries
run out :class:`PhoneUnavailable` is raised, which callers treat as the phone's
fault (a farm worker hands the job to another phone). A phone that has not yet
accepted this computer's key raises :class:`PhoneAuthError` with instructions.
"""

from __future__ import annotations

import io
import posixpath
import re
import shlex
import socket
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from akd_tf.errors import DeviceError, InvalidInput
from devicefarm import adb_wire
from devicefarm.adbkeys import ensure_key_pair, load_signer, public_key_path

EXIT_MARKER = "__akd_tf_exit="
_STATUS_ECHO = re.compile(re.escape(EXIT_MARKER) + r"(-?\d+)[ \t\r]*(?:\n|$)")
DEFAULT_PORT = 5555


class PhoneUnavailable(DeviceError, ConnectionError):
    """The phone could not be reached or dropped the connection, even after retries."""


class PhoneAuthError(PhoneUnavailable):
    """The phone did not accept this computer's ADB key."""


class CommandFailed(DeviceError, RuntimeError):
    """A command ran on the phone and exited non-zero."""

    def __init__(self, argv: list[str], exit_code: int, output: str):
        tail = output.strip().splitlines()[-3:]
        super().__init__(f"`{shlex.join(argv)}` exited with status {exit_code}"
                         + (f": {' | '.join(tail)}" if tail else ""))
        self.argv, self.exit_code, self.output = argv, exit_code, output


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    output: str
    exit_code: int


def _transport_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as adb

    return (OSError, socket.timeout, adb.AdbConnectionError, adb.AdbTimeoutError, adb.TcpTimeoutException,
            adb.InvalidChecksumError, adb.InvalidCommandError, adb.InvalidResponseError, adb.UsbReadFailedError,
            adb.UsbWriteFailedError)


def _no_delay_transport(host: str, port: int):
    """adb-shell's TCP transport with Nagle's algorithm off, and writes that send every byte.

    adb-shell writes each packet's header and payload separately; with Nagle on, the payload waits for
    the peer's delayed ACK (~40 ms), which made every shell command cost ~65 ms on loopback. Its socket is
    non-blocking and its ``bulk_write`` makes one ``send`` whose count nobody checks, so a full send buffer
    would drop the rest of a packet; here the rest is sent within the same timeout.
    """
    import select

    from adb_shell.exceptions import TcpTimeoutException
    from adb_shell.transport.tcp_transport import TcpTransport

    class NoDelayTcpTransport(TcpTransport):
        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_write(self, data, transport_timeout_s):
            view, sent = memoryview(data), 0
            deadline = None if transport_timeout_s is None else time.monotonic() + transport_timeout_s
            while sent < len(view):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                _, writable, _ = select.select([], [self._connection], [], left)
                if not writable:
                    raise TcpTimeoutException(f"sending to {self._host}:{self._port} timed out after "
                                              f"{transport_timeout_s} s with {sent} of {len(view)} bytes sent")
                try:
                    sent += self._connection.send(view[sent:])
                except BlockingIOError:
                    continue
            return sent

    return NoDelayTcpTransport(host, port)


def _adb_device(transport, default_transport_timeout_s: float):
    """adb-shell's ``AdbDevice`` whose packets carry checksums summed with numpy.

    adb-shell speaks protocol version 0x01000000, where every payload carries its byte sum; it sums with
    Python's ``sum`` (~50 ms per 4 MB pushed). The header it sends is the same, byte for byte.
    """
    from adb_shell import constants
    from adb_shell.adb_device import AdbDevice, _AdbIOManager

    class IOManager(_AdbIOManager):
        def _send(self, msg, adb_info):
            header = struct.pack(constants.MESSAGE_FORMAT, msg.command, msg.arg0, msg.arg1, len(msg.data),
                                 adb_wire.checksum(msg.data), msg.magic)
            self._transport.bulk_write(header + bytes(msg.data), adb_info.transport_timeout_s)

    device = AdbDevice(transport, default_transport_timeout_s=default_transport_timeout_s)
    device._io_manager = IOManager(transport)
    return device


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` for ``HOST:PORT`` (or a bare IPv4 address, port 5555); ``None`` for a USB serial."""
    host, sep, port = address.rpartition(":")
    if sep:
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInput(f"ADB address {address!r} is not HOST:PORT with a port in 1..65535")
        return host, int(port)
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        return address, DEFAULT_PORT
    if not address or any(c.isspace() for c in address):
        raise InvalidInput(f"ADB address {address!r} is neither HOST:PORT nor a USB serial")
    return None


def command_line(argv: list[str]) -> str:
    """The shell line sent for ``argv``: every argument quoted, then the exit-status echo."""
    if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidInput(f"a phone command is a non-empty list of strings, got {argv!r}")
    return f"{shlex.join(argv)} ; echo {EXIT_MARKER}$?"


def commands_line(argvs: list[list[str]]) -> str:
    """The shell line that runs several commands in order, each quoted and followed by its status echo."""
    if not isinstance(argvs, (list, tuple)) or not argvs:
        raise InvalidInput(f"expected a non-empty list of commands, got {argvs!r}")
    return " ; ".join(command_line(argv) for argv in argvs)


def split_exit_statuses(output: str, count: int) -> list[tuple[str, int]] | None:
    """The ``(output, exit status)`` of each of ``count`` commands run by :func:`commands_line`, or ``None``
    unless exactly ``count`` status echoes arrived and nothing but white space follows the last."""
    sections, start = [], 0
    for match in _STATUS_ECHO.finditer(output):
        sections.append((output[start:match.start()], int(match.group(1))))
        start = match.end()
    if len(sections) != count or output[start:].strip():
        return None
    return sections


def split_exit_status(output: str) -> tuple[str, int] | None:
    """``(output without the marker, exit status)``, or ``None`` if the marker never arrived."""
    head, sep, tail = output.rpartition(EXIT_MARKER)
    if not sep:
        return None
    status = tail.strip()
    if not status.lstrip("-").isdigit():
        return None
    return head, int(status)


class PhoneConnection:
    """A reconnecting ADB connection to one phone (TCP ``HOST:PORT``, or a USB serial where libusb is present)."""

    def __init__(self, address: str, *, key_path: Path | str | None = None, connect_timeout_s: float = 10.0,
                 auth_timeout_s: float = 60.0, command_timeout_s: float = 30.0, retries: int = 3,
                 backoff_s: float = 0.5, on_auth_prompt: Callable[[str], None] | None = None):
        self.address = address
        self.tcp = parse_address(address)
        self.key_path = ensure_key_pair(key_path)
        self.connect_timeout_s, self.auth_timeout_s = connect_timeout_s, auth_timeout_s
        self.command_timeout_s, self.retries, self.backoff_s = command_timeout_s, retries, backoff_s
        self.on_auth_prompt = on_auth_prompt
        self._device = None

    # -- connection ------------------------------------------------------------------------------
    def _new_device(self):
        if self.tcp is not None:
            return _adb_device(_no_delay_transport(*self.tcp), self.connect_timeout_s)
        from adb_shell.exceptions import InvalidTransportError, UsbDeviceNotFoundError

        try:
            from adb_shell.adb_device import AdbDeviceUsb

            return AdbDeviceUsb(serial=self.address, default_transport_timeout_s=self.connect_timeout_s)
        except (ImportError, InvalidTransportError, UsbDeviceNotFoundError) as error:
            raise PhoneUnavailable(f"cannot open USB device {self.address!r}: {error}; USB needs the libusb1 "
                                   "package (pip install 'adb-shell[usb]'), or connect over TCP with HOST:PORT "
                                   "(on the phone: adb tcpip 5555)") from error

    def connect(self) -> None:
        """Connect and authenticate once (no retries); raises PhoneAuthError or PhoneUnavailable."""
        from adb_shell.exceptions import DeviceAuthError

        self.close()
        device = self._new_device()
        prompted = []

        def prompt(_device) -> None:
            prompted.append(True)
            if self.on_auth_prompt is not None:
                self.on_auth_prompt(self._auth_instructions())

        try:
            device.connect(rsa_keys=[load_signer(self.key_path)], transport_timeout_s=self.connect_timeout_s,
                           auth_timeout_s=self.auth_timeout_s, read_timeout_s=max(self.connect_timeout_s,
                                                                                  self.auth_timeout_s),
                           auth_callback=prompt)
        except DeviceAuthError as error:
            device.close()
            raise PhoneAuthError(f"{self.address}: {error}; {self._auth_instructions()}") from error
        except _transport_errors() as error:
            device.close()
            if prompted:
                raise PhoneAuthError(f"{self.address} did not accept this computer's ADB key within "
                                     f"{self.auth_timeout_s:g} s; {self._auth_instructions()}") from error
            raise PhoneUnavailable(f"cannot connect to {self.address}: {error}") from error
        self._device = device

    def _auth_instructions(self) -> str:
        return (f"unlock the phone and accept the 'Allow USB debugging?' prompt for the key "
                f"{public_key_path(self.key_path)} (tick 'Always allow from this computer')")

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def __enter__(self) -> "PhoneConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _retrying(self, what: str, action):
        """Run ``action(device)``; on transport errors reconnect with backoff, up to ``retries`` more times."""
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 30.0))
            try:
                if self._device is None:
                    self.connect()
                return action(self._device)
            except PhoneAuthError:
                raise
            except PhoneUnavailable as error:
                last = error
            except _transport_errors() as error:
                last = error
                self.close()
        raise PhoneUnavailable(f"{self.address}: {what} failed after {self.retries + 1} attempts: {last}") from last

    # -- commands ------------------------------------------------------------------------------
    def run(self, argv: list[str], *, timeout_s: float | None = None, check: bool = True) -> CommandResult:
        """Run ``argv`` (quoted) on the phone; output is stdout and stderr merged (shell v1).

        ``timeout_s`` bounds the whole command and the wait for each packet; size it to the work.
        A non-zero exit raises :class:`CommandFailed` when ``check``.
        """
        line = command_line(argv)
        timeout = timeout_s or self.command_timeout_s

        def attempt(device) -> tuple[str, int]:
            raw = device.shell(line, transport_timeout_s=timeout, read_timeout_s=timeout, timeout_s=timeout)
            parsed = split_exit_status(raw)
            if parsed is None:  # the stream ended before the status echo: the connection dropped
                raise ConnectionResetError(f"output of `{shlex.join(argv)}` ended without its exit status")
            return parsed

        output, status = self._retrying(f"`{shlex.join(argv)}`", attempt)
        if check and status != 0:
            raise CommandFailed(argv, status, output)
        return CommandResult(argv, output, status)

    def run_all(self, argvs: list[list[str]], *, timeout_s: float | None = None,
                check: bool = True) -> list[CommandResult]:
        """Run several commands in one shell line (one round trip), in order, each with its exit status.

        A dropped connection re-runs the whole line, so use it for commands that may run twice (reads,
        ``rm -f``). With ``check`` the first non-zero exit raises :class:`CommandFailed`.
        """
        line = commands_line(argvs)
        timeout = timeout_s or self.command_timeout_s
        what = " ; ".join(shlex.join(argv) for argv in argvs)

        def attempt(device) -> list[tuple[str, int]]:
            raw = device.shell(line, transport_timeout_s=timeout, read_timeout_s=timeout, timeout_s=timeout)
            parsed = split_exit_statuses(raw, len(argvs))
            if parsed is None:
                raise ConnectionResetError(f"output of `{what}` ended before every exit status arrived")
            return parsed

        results = [CommandResult(argv, output, status)
                   for argv, (output, status) in zip(argvs, self._retrying(f"`{what}`", attempt))]
        failed = next((result for result in results if result.exit_code != 0), None)
        if check and failed is not None:
            raise CommandFailed(failed.argv, failed.exit_code, failed.output)
        return results

    def output(self, argv: list[str], **kwargs) -> str:
        return self.run(argv, **kwargs).output

    def push(self, local: Path | str | bytes, remote: str, *, mode: int = 0o644,
             timeout_s: float | None = None) -> None:
        """Copy a local file, or bytes held in memory, to the phone with the sync protocol.

        ``timeout_s`` defaults to 30 s + 1 s per MB.
        """
        from adb_shell.exceptions import AdbCommandFailureException, PushFailedError

        if isinstance(local, (bytes, bytearray)):  # a fresh stream per attempt: a retry starts over
            data = bytes(local)
            name, size, source = posixpath.basename(remote), len(data), lambda: io.BytesIO(data)
        else:
            path = Path(local)
            name, size, source = path.name, path.stat().st_size, lambda: str(path)
        timeout = timeout_s or 30.0 + size / 1e6
        try:
            self._retrying(f"push of {name}", lambda device: device.push(
                source(), remote, st_mode=stat.S_IFREG | mode, transport_timeout_s=timeout, read_timeout_s=timeout))
        except (PushFailedError, AdbCommandFailureException) as error:  # the phone refused the file (space, path)
            raise PhoneUnavailable(f"{self.address}: the phone refused {name} as {remote}: {error}") from error
