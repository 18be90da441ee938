"""The services a host can ``OPEN`` on the emulated phone: ``shell[,ARGS]:CMD``, ``exec:CMD`` and ``sync:``.

``shell:CMD`` is shell protocol v1: standard output and error merged into the stream, sent as produced, the
stream closed when the command ends, no exit status; data the host writes to it is acknowledged and dropped
(no standard input). ``exec:`` runs the same way (raw output).

``shell,v2,...:CMD`` is shell protocol v2 (the phone advertises the ``shell_v2`` feature, so Android's own
``adb`` uses it): every packet in either direction is ``id`` (1 byte), ``length`` (4 bytes, little endian)
and the data. The phone sends standard output (id 1) and standard error (id 2) apart, in the order they are
written, then the exit status (id 3, one byte) before closing; the host's packets carry standard input
(id 0) until it closes it (id 4); window-size changes (id 5) are read and ignored. With the ``pty``
argument (``adb shell -t``) both outputs go out as standard output with ``\\n`` sent as ``\\r\\n``, as a
terminal would. Unknown arguments are ignored, as adbd ignores them. Every command line is appended to
``state.command_log``. There is no interactive shell: ``adb shell`` without a command is told so.
"""

from __future__ import annotations

import struct

from devicefarm.emulator.connection import Service, Stream, StreamClosed
from devicefarm.emulator.faults import InjectedDisconnect
from devicefarm.emulator.shell import PhoneShell
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.stdio import Input, as_bytes
from devicefarm.emulator.sync import SyncService

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE_CHANGE = range(6)
V2_HEADER = struct.Struct("<BI")


class StreamOutput:
    """Shell v1 output into a stream: buffered until ``flush`` or until a packet's worth has accumulated."""

    def __init__(self, stream: Stream):
        self._stream = stream
        self._buffer = bytearray()

    def write(self, data: str | bytes) -> None:
        self._buffer += as_bytes(data)
        if len(self._buffer) >= self._stream.connection.max_payload:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._stream.write(data)


class ShellV2Writer:
    """Shell v2 packets into a stream, buffered together so standard output and error keep their order."""

    def __init__(self, stream: Stream, pty: bool):
        self._stream, self._pty = stream, pty
        self._buffer = bytearray()

    def packet(self, packet_id: int, data: bytes) -> None:
        if self._pty and packet_id in (ID_STDOUT, ID_STDERR):
            packet_id, data = ID_STDOUT, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not data and packet_id != ID_EXIT:
            return
        self._buffer += V2_HEADER.pack(packet_id, len(data)) + data
        if len(self._buffer) >= self._stream.connection.max_payload:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._stream.write(data)

    def output(self, packet_id: int) -> "_ChannelOutput":
        return _ChannelOutput(self, packet_id)


class _ChannelOutput:
    """One channel (standard output or error) of a :class:`ShellV2Writer`, as an ``Output``."""

    def __init__(self, writer: ShellV2Writer, packet_id: int):
        self._writer, self._id = writer, packet_id

    def write(self, data: str | bytes) -> None:
        self._writer.packet(self._id, as_bytes(data))

    def flush(self) -> None:
        self._writer.flush()


def read_v2_stdin(stream: Stream) -> bytes:
    """The host's standard input: the data of its stdin packets until it closes stdin (or the stream)."""
    data = bytearray()
    try:
        while True:
            packet_id, length = V2_HEADER.unpack(stream.read_exact(V2_HEADER.size))
            payload = stream.read_exact(length) if length else b""
            if packet_id == ID_STDIN:
                data += payload
            elif packet_id == ID_CLOSE_STDIN:
                break
    except StreamClosed:
        pass
    return bytes(data)


def _run(stream: Stream, state: PhoneState, command: str, run) -> None:
    """Run ``command`` with ``run()``; an injected disconnect resets the connection once the output so far has
    been acknowledged by the host."""
    state.command_log.append(command)
    try:
        run()
    except InjectedDisconnect:
        stream.wait_acknowledged()
        stream.connection.abort()


def run_shell_service(stream: Stream, state: PhoneState, command: str) -> None:
    """Shell protocol v1: ``command``'s output, merged, streamed."""
    stream.discard_input = True
    out = StreamOutput(stream)

    def run() -> None:
        try:
            PhoneShell(state).run(command, out)
        finally:
            out.flush()

    _run(stream, state, command, run)


def run_shell_v2_service(stream: Stream, state: PhoneState, command: str, *, pty: bool) -> None:
    """Shell protocol v2: ``command``'s standard output and error apart, then its exit status."""
    writer = ShellV2Writer(stream, pty)

    def run() -> None:
        try:
            status = PhoneShell(state).run(command, writer.output(ID_STDOUT), writer.output(ID_STDERR),
                                           Input(source=lambda: read_v2_stdin(stream)))
        finally:
            writer.flush()
        writer.packet(ID_EXIT, bytes([status & 0xFF]))
        writer.flush()

    _run(stream, state, command, run)


NO_INTERACTIVE_SHELL = ("the emulated phone has no interactive shell: run one command line at a time, "
                        "as in: adb shell 'ls -l /data/local/tmp'\n")


def run_no_interactive_shell(stream: Stream, state: PhoneState, v2: bool) -> None:
    """``adb shell`` without a command: a refusal that says how to run commands (exit status 1 under v2)."""
    if not v2:
        stream.discard_input = True
        stream.write(NO_INTERACTIVE_SHELL.encode())
        return
    writer = ShellV2Writer(stream, pty=True)
    writer.packet(ID_STDERR, NO_INTERACTIVE_SHELL.encode())
    writer.packet(ID_EXIT, b"\x01")
    writer.flush()


def shell_service(arguments: str, command: str, state: PhoneState) -> Service:
    """The service for ``shell[,ARG...]:command``: v2 when ``v2`` is among the arguments, else v1; without a
    command (an interactive shell) the refusal :data:`NO_INTERACTIVE_SHELL`."""
    args = arguments.split(",")
    if not command.strip():
        return lambda stream: run_no_interactive_shell(stream, state, "v2" in args)
    if "v2" in args:
        pty = "pty" in args or ("raw" not in args and not command)  # adbd's default: a pty for no command
        return lambda stream: run_shell_v2_service(stream, state, command, pty=pty)
    return lambda stream: run_shell_service(stream, state, command)


def service_factory(state: PhoneState):
    """A function from a service name to the service to run on a new stream, or ``None`` if unknown."""

    def service(name: str) -> Service | None:
        if name.startswith("shell") and ":" in name:
            arguments, _, command = name[len("shell"):].partition(":")
            if not arguments or arguments.startswith(","):
                return shell_service(arguments, command, state)
        if name.startswith("exec:"):
            command = name[len("exec:"):]
            return lambda stream: run_shell_service(stream, state, command)
        if name == "sync:":
            return lambda stream: SyncService(stream, state).run()
        return None

    return service
