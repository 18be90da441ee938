"""The services a host can ``OPEN`` on the emulated phone: ``shell:CMD`` / ``exec:CMD`` and ``sync:``.

``shell:`` is shell protocol v1 (the phone does not advertise ``shell_v2``): stdout and stderr merged into
the stream, output sent as it is produced, the stream closed when the command ends, no exit status;
data the host writes to it is acknowledged and dropped (no stdin).
``exec:`` runs the same way (raw output). Every command line is appended to ``state.command_log``.
"""

from __future__ import annotations

from devicefarm.emulator.connection import Service, Stream
from devicefarm.emulator.faults import InjectedDisconnect
from devicefarm.emulator.shell import PhoneShell
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.sync import SyncService


class StreamOutput:
    """Shell output into a stream: buffered until ``flush`` or until a packet's worth has accumulated."""

    def __init__(self, stream: Stream):
        self._stream = stream
        self._buffer = bytearray()

    def write(self, data: str | bytes) -> None:
        self._buffer += data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if len(self._buffer) >= self._stream.connection.max_payload:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._stream.write(data)


def run_shell_service(stream: Stream, state: PhoneState, command: str) -> None:
    """Run ``command`` and stream its output; an injected disconnect resets the connection once the
    output so far has been acknowledged by the host."""
    stream.discard_input = True
    state.command_log.append(command)
    out = StreamOutput(stream)
    try:
        PhoneShell(state).run(command, out)
        out.flush()
    except InjectedDisconnect:
        out.flush()
        stream.wait_acknowledged()
        stream.connection.abort()


def service_factory(state: PhoneState):
    """A function from a service name to the service to run on a new stream, or ``None`` if unknown."""

    def service(name: str) -> Service | None:
        for prefix in ("shell:", "exec:"):
            if name.startswith(prefix):
                command = name[len(prefix):]
                return lambda stream: run_shell_service(stream, state, command)
        if name == "sync:":
            return lambda stream: SyncService(stream, state).run()
        return None

    return service
