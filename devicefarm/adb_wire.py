"""ADB wire-protocol primitives (AOSP ``protocol.txt``): message header, checksum, reading one message.

Every message is a 24-byte little-endian header ``<6I``::

    command, arg0, arg1, data_length, data_crc32, magic

followed by ``data_length`` payload bytes. ``magic`` is ``command ^ 0xffffffff``; ``data_crc32`` is, despite
its name, the sum of the payload bytes modulo 2**32. Peers negotiate the protocol version in ``CNXN``
(the lower of the two wins); below :data:`A_VERSION_SKIP_CHECKSUM` the checksum is filled in and verified,
from that version on it is sent as 0 and ignored.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import numpy as np

from akd_tf.errors import InvalidInput


def _wire(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


A_SYNC = _wire(b"SYNC")
A_CNXN = _wire(b"CNXN")
A_AUTH = _wire(b"AUTH")
A_OPEN = _wire(b"OPEN")
A_OKAY = _wire(b"OKAY")
A_CLSE = _wire(b"CLSE")
A_WRTE = _wire(b"WRTE")

# arg0 of AUTH messages
AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
DEVICE_VERSION = A_VERSION_SKIP_CHECKSUM  # what the emulated adbd advertises
DEVICE_MAX_DATA = 256 * 1024  # adbd's MAX_PAYLOAD
MAX_PAYLOAD_V1 = 4 * 1024  # payload limit before a CNXN negotiated a larger one

HEADER_FORMAT = "<6I"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)
AUTH_TOKEN_SIZE = 20


class ProtocolError(Exception):
    """A peer broke the ADB wire protocol (bad magic, bad checksum, oversized or truncated message)."""


class ConnectionClosed(EOFError):
    """The peer closed the connection cleanly, between two messages."""


@dataclass(frozen=True)
class Message:
    """One ADB message: its command word, both arguments and the payload."""

    command: int
    arg0: int
    arg1: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        return command_name(self.command)


def command_name(command: int) -> str:
    """The four ASCII letters of a command word (``A_CNXN`` -> ``"CNXN"``), or its hex value if not ASCII."""
    raw = struct.pack("<I", command)
    if all(0x20 < byte < 0x7F for byte in raw):
        return raw.decode("ascii")
    return f"0x{command:08x}"


_NUMPY_SUM_FROM_BYTES = 512  # below this Python's sum() is faster than building an array


def checksum(payload: bytes | bytearray | memoryview) -> int:
    """The ``data_crc32`` field: the sum of the payload's bytes modulo 2**32.

    Large payloads are summed with numpy: Python's ``sum`` takes ~12 ns a byte, ~50 ms for a 4 MB push,
    which adbd (C) does not spend.
    """
    if len(payload) < _NUMPY_SUM_FROM_BYTES:
        return sum(payload) & 0xFFFFFFFF
    return int(np.frombuffer(payload, dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF


def checksums_in_use(version: int) -> bool:
    """Whether a connection at protocol ``version`` fills in and verifies payload checksums."""
    return version < A_VERSION_SKIP_CHECKSUM


def pack_message(command: int, arg0: int, arg1: int, payload: bytes = b"", *, version: int) -> bytes:
    """Header plus payload, with the checksum filled in when ``version`` uses checksums (0 otherwise)."""
    for name, value in (("command", command), ("arg0", arg0), ("arg1", arg1)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise InvalidInput(f"{name} must fit in 32 unsigned bits, got {value!r}")
    crc = checksum(payload) if checksums_in_use(version) else 0
    return struct.pack(HEADER_FORMAT, command, arg0, arg1, len(payload), crc, command ^ 0xFFFFFFFF) + payload


def unpack_header(header: bytes) -> tuple[int, int, int, int, int, int]:
    """``(command, arg0, arg1, data_length, data_crc32, magic)``; ``ProtocolError`` if the magic is wrong."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"an ADB header is {HEADER_SIZE} bytes, got {len(header)}")
    fields = struct.unpack(HEADER_FORMAT, header)
    command, magic = fields[0], fields[5]
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command {command_name(command)}; "
                            f"expected 0x{command ^ 0xFFFFFFFF:08x}")
    return fields


def _recv_exact(sock: socket.socket, size: int, what: str) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            if left == size and what == "header":
                raise ConnectionClosed("the peer closed the connection")
            raise ProtocolError(f"the connection closed after {size - left} of {size} bytes of a message {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket, *, version: int, max_payload: int = DEVICE_MAX_DATA) -> Message:
    """Read one message from ``sock``.

    Raises ``ConnectionClosed`` on a clean end of stream before a header, and ``ProtocolError`` for a bad
    magic, a payload longer than ``max_payload``, a truncated message, or (when ``version`` uses checksums)
    a payload whose byte sum differs from the header's checksum.
    """
    command, arg0, arg1, length, crc, _ = unpack_header(_recv_exact(sock, HEADER_SIZE, "header"))
    if length > max_payload:
        raise ProtocolError(f"{command_name(command)} payload of {length} bytes exceeds the limit of "
                            f"{max_payload} bytes")
    payload = _recv_exact(sock, length, "payload") if length else b""
    if checksums_in_use(version) and checksum(payload) != crc:
        raise ProtocolError(f"{command_name(command)} payload checksum mismatch: the header says {crc}, "
                            f"the {length} payload bytes sum to {checksum(payload)}")
    return Message(command, arg0, arg1, payload)
