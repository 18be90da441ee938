"""One ADB connection on the device side: handshake, public-key authentication, streams, flow control.

The connection's thread reads messages and dispatches them; every opened stream runs its service in a
thread of its own, so a long ``benchmark_model`` does not block other streams or the flow-control
``OKAY``\\ s. Protocol (AOSP ``protocol.txt``):

- ``CNXN(version, maxdata, "host::...")`` from the host: the version becomes min(host, device) and the
  payload limit min(host, 256 KiB); the device answers ``AUTH(TOKEN)`` with 20 random bytes.
- ``AUTH(SIGNATURE)``: checked against every authorized key; success -> ``CNXN`` with the device banner,
  failure -> a fresh ``AUTH(TOKEN)``. ``AUTH(RSAPUBLICKEY)``: stored and answered with ``CNXN`` when new keys
  are accepted (the user "taps Allow"); otherwise never answered.
- ``OPEN(host_id, 0, service)``: ``OKAY(device_id, host_id)`` and the service starts, or ``CLSE(0, host_id)``
  for an unknown service. ``WRTE`` from the host is acknowledged with ``OKAY``; after sending a ``WRTE``
  the device waits for the host's ``OKAY`` before sending the next one on that stream. ``CLSE`` from the
  host closes the stream and is answered with ``CLSE``; a ``CLSE`` for an already closed stream is ignored.

Until authentication succeeds every other message is ignored, as adbd does for an offline transport.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from typing import Callable

from devicefarm.adb_wire import (A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_VERSION_MIN, A_WRTE, AUTH_RSAPUBLICKEY,
                                 AUTH_SIGNATURE, AUTH_TOKEN, AUTH_TOKEN_SIZE, DEVICE_MAX_DATA, DEVICE_VERSION,
                                 MAX_PAYLOAD_V1, ConnectionClosed, Message, ProtocolError, pack_message,
                                 read_message)
from devicefarm.emulator.auth import AuthorizedKeys
from devicefarm.emulator.state import PhoneState

_LOG = logging.getLogger(__name__)


class StreamClosed(Exception):
    """The stream (or its whole connection) is closed; the service using it should stop."""


class Stream:
    """One ADB stream: ``write`` blocks for the host's ``OKAY`` between packets; ``read_exact`` takes the
    bytes the host sent in ``WRTE`` packets, across packet boundaries."""

    def __init__(self, connection: "AdbConnection", local_id: int, remote_id: int):
        self.connection, self.local_id, self.remote_id = connection, local_id, remote_id
        self._cond = threading.Condition()
        self._acknowledged = True
        self._closed = False
        self._inbox = bytearray()
        self.discard_input = False  # set by services that never read (shell v1 has no stdin here)

    # called by the connection's reader thread
    def on_okay(self) -> None:
        with self._cond:
            self._acknowledged = True
            self._cond.notify_all()

    def on_data(self, payload: bytes) -> None:
        if self.discard_input:
            return
        with self._cond:
            self._inbox += payload
            self._cond.notify_all()

    def on_closed(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes) -> None:
        """Send ``data`` in ``WRTE`` packets no larger than the negotiated payload limit."""
        limit = self.connection.max_payload
        for start in range(0, len(data), limit):
            with self._cond:
                while not self._acknowledged and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise StreamClosed(f"stream {self.local_id} is closed")
                self._acknowledged = False
            self.connection.send(A_WRTE, self.local_id, self.remote_id, data[start:start + limit])

    def wait_acknowledged(self) -> None:
        """Block until the host acknowledged the last ``WRTE`` (or the stream closed)."""
        with self._cond:
            while not self._acknowledged and not self._closed:
                self._cond.wait()

    def read_exact(self, size: int) -> bytes:
        """The next ``size`` bytes from the host; ``StreamClosed`` if the stream closes first."""
        with self._cond:
            while len(self._inbox) < size and not self._closed:
                self._cond.wait()
            if len(self._inbox) < size:
                raise StreamClosed(f"stream {self.local_id} closed while waiting for {size} bytes")
            data = bytes(self._inbox[:size])
            del self._inbox[:size]
            return data

    def close(self) -> None:
        """Close from the device side (sends ``CLSE`` unless already closed)."""
        self.connection.close_stream(self)


Service = Callable[[Stream], None]
ServiceFactory = Callable[[str], "Service | None"]


class AdbConnection:
    """Serves one accepted socket until the host disconnects, breaks the protocol, or :meth:`abort`."""

    def __init__(self, sock: socket.socket, state: PhoneState, keys: AuthorizedKeys, services: ServiceFactory):
        self._sock, self._state, self._keys, self._services = sock, state, keys, services
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._token: bytes | None = None
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self._aborted = False

    # sending
    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        """Send one message (after ``faults.slow_response_s``); raises ``OSError`` once the socket is gone."""
        delay = self._state.faults.slow_response_s
        if delay:
            time.sleep(delay)
        packet = pack_message(command, arg0, arg1, payload, version=self.version)
        with self._send_lock:
            self._sock.sendall(packet)

    def banner(self) -> bytes:
        profile = self._state.profile
        return (f"device::ro.product.name={profile.product_name};ro.product.model={profile.model};"
                f"ro.product.device={profile.device};features=shell_v2,cmd").encode()

    # lifecycle
    def serve(self) -> None:
        try:
            while True:
                self._dispatch(read_message(self._sock, version=self.version))
        except ConnectionClosed:
            _LOG.debug("host closed the connection")
        except ProtocolError as exc:
            _LOG.info("closing the connection: %s", exc)
        except OSError as exc:
            _LOG.debug("connection ended: %s", exc)
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Reset the TCP connection (RST, as when the phone vanishes); the reader thread then cleans up."""
        self._aborted = True
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._sock.shutdown(socket.SHUT_RD)
        except OSError as exc:
            _LOG.debug("abort on a socket that is already gone: %s", exc)

    def _shutdown(self) -> None:
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.on_closed()
        self._sock.close()

    def close_stream(self, stream: Stream) -> None:
        with self._streams_lock:
            registered = self._streams.pop(stream.local_id, None) is stream
        stream.on_closed()
        if registered:
            try:
                self.send(A_CLSE, stream.local_id, stream.remote_id)
            except OSError as exc:
                _LOG.debug("CLSE not sent, connection gone: %s", exc)

    # receiving
    def _dispatch(self, message: Message) -> None:
        if message.command == A_CNXN:
            self._on_connect(message)
        elif message.command == A_AUTH:
            self._on_auth(message)
        elif not self.online:
            _LOG.debug("ignoring %s before authentication", message.name)
        elif message.command == A_OPEN:
            self._on_open(message)
        elif message.command in (A_OKAY, A_WRTE, A_CLSE):
            self._on_stream_message(message)
        else:
            _LOG.debug("ignoring unknown command %s", message.name)

    def _on_connect(self, message: Message) -> None:
        if message.arg0 < A_VERSION_MIN:
            raise ProtocolError(f"host protocol version 0x{message.arg0:08x} is older than 0x{A_VERSION_MIN:08x}")
        if message.arg1 < 1:
            raise ProtocolError(f"host maxdata must be >= 1, got {message.arg1}")
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:  # a new CNXN restarts the session
            stream.on_closed()
        self.online = False
        self.version = min(message.arg0, DEVICE_VERSION)
        self.max_payload = min(message.arg1, DEVICE_MAX_DATA)
        self._send_token()

    def _send_token(self) -> None:
        self._token = os.urandom(AUTH_TOKEN_SIZE)
        self.send(A_AUTH, AUTH_TOKEN, 0, self._token)

    def _go_online(self) -> None:
        self.online = True
        self._token = None
        self.send(A_CNXN, DEVICE_VERSION, self.max_payload, self.banner())

    def _on_auth(self, message: Message) -> None:
        if self._token is None:
            _LOG.debug("ignoring AUTH without a pending token")
            return
        faults = self._state.faults
        if message.arg0 == AUTH_SIGNATURE:
            if not faults.reject_auth and self._keys.accepts(self._token, message.payload):
                self._go_online()
            else:
                self._send_token()
        elif message.arg0 == AUTH_RSAPUBLICKEY:
            if faults.reject_auth or not self._state.accept_new_keys:
                _LOG.info("public key prompt left unanswered")
                return
            try:
                self._keys.add(message.payload)
            except ValueError as exc:
                _LOG.warning("rejecting an unreadable public key: %s", exc)
                return
            self._go_online()
        else:
            _LOG.debug("ignoring AUTH type %d", message.arg0)

    def _on_open(self, message: Message) -> None:
        remote_id = message.arg0
        if remote_id == 0:
            raise ProtocolError("OPEN with local-id 0")
        name = message.payload.rstrip(b"\0").decode("utf-8", "replace")
        service = self._services(name)
        if service is None:
            _LOG.info("unknown service %r", name)
            self.send(A_CLSE, 0, remote_id)
            return
        with self._streams_lock:
            local_id, self._next_id = self._next_id, self._next_id % 0xFFFFFFFF + 1
            stream = Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run_service, args=(service, stream), daemon=True,
                         name=f"adb-{self._state.serial}-{name.split(':', 1)[0]}-{local_id}").start()

    def _run_service(self, service: Service, stream: Stream) -> None:
        try:
            service(stream)
        except (StreamClosed, OSError) as exc:
            _LOG.debug("service on stream %d stopped: %s", stream.local_id, exc)
        finally:
            if not self._aborted:
                stream.close()

    def _on_stream_message(self, message: Message) -> None:
        with self._streams_lock:
            stream = self._streams.get(message.arg1)
        if stream is None or stream.remote_id != message.arg0:
            _LOG.debug("ignoring %s for unknown stream %d/%d", message.name, message.arg1, message.arg0)
            return
        if message.command == A_OKAY:
            stream.on_okay()
        elif message.command == A_WRTE:
            self.send(A_OKAY, stream.local_id, stream.remote_id)  # acknowledged before the service can answer
            stream.on_data(message.payload)
        else:
            with self._streams_lock:
                self._streams.pop(stream.local_id, None)
            stream.on_closed()
            self.send(A_CLSE, stream.local_id, stream.remote_id)
