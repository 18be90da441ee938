"""ADB public-key authentication on the device side: Android's RSA key format and ``adb_keys``.

An ADB host key travels (in ``AUTH RSAPUBLICKEY``) and is stored (one per line in adbd's ``adb_keys``) as
``BASE64 user@host``, where ``BASE64`` encodes libcrypto_utils' ``RSAPublicKey`` struct (``<LL256s256sL``):
``modulus_size_words`` (64), ``n0inv`` (-1/n mod 2**32), the modulus little-endian, ``rr`` (R**2 mod n,
R = 2**2048) little-endian, and the exponent. The host proves it holds a key by signing the device's
20-byte token with RSA PKCS#1 v1.5 over the token taken as an already computed SHA-1 digest.
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

ANDROID_PUBKEY_MODULUS_SIZE = 2048 // 8
ANDROID_PUBKEY_MODULUS_SIZE_WORDS = ANDROID_PUBKEY_MODULUS_SIZE // 4
RSA_PUBLIC_KEY_STRUCT = f"<LL{ANDROID_PUBKEY_MODULUS_SIZE}s{ANDROID_PUBKEY_MODULUS_SIZE}sL"
RSA_PUBLIC_KEY_SIZE = struct.calcsize(RSA_PUBLIC_KEY_STRUCT)

_LOG = logging.getLogger(__name__)


def _key_field(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            text = text.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("an Android public key must be ASCII text (base64, then an optional comment)") from None
    fields = text.strip().split()
    if not fields:
        raise ValueError("empty Android public key; expected base64 of the RSAPublicKey struct")
    return fields[0]


def decode_android_public_key(text: str | bytes) -> rsa.RSAPublicKey:
    """The RSA key in ``BASE64[ user@host]`` (trailing NUL and whitespace allowed).

    Raises ``ValueError`` naming the problem: bad base64, wrong struct size, ``modulus_size_words`` other
    than 64, an exponent other than 3 or 65537, or ``n0inv``/``rr`` inconsistent with the modulus.
    """
    try:
        blob = base64.b64decode(_key_field(text), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"Android public key is not valid base64: {exc}") from None
    if len(blob) != RSA_PUBLIC_KEY_SIZE:
        raise ValueError(f"Android public key struct is {len(blob)} bytes, expected {RSA_PUBLIC_KEY_SIZE}")
    size_words, n0inv, modulus_le, rr_le, exponent = struct.unpack(RSA_PUBLIC_KEY_STRUCT, blob)
    if size_words != ANDROID_PUBKEY_MODULUS_SIZE_WORDS:
        raise ValueError(f"Android public key modulus_size_words is {size_words}, "
                         f"expected {ANDROID_PUBKEY_MODULUS_SIZE_WORDS}")
    if exponent not in (3, 65537):
        raise ValueError(f"Android public key exponent is {exponent}, expected 3 or 65537")
    modulus = int.from_bytes(modulus_le, "little")
    if modulus % 2 == 0 or modulus.bit_length() != 2048:
        raise ValueError("Android public key modulus is not an odd 2048-bit number")
    if (n0inv * modulus) % (1 << 32) != (1 << 32) - 1:
        raise ValueError(f"Android public key n0inv 0x{n0inv:08x} is not -1/n mod 2**32")
    if int.from_bytes(rr_le, "little") != pow(1 << 2048, 2, modulus):
        raise ValueError("Android public key rr is not R**2 mod n")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def encode_android_public_key(key: rsa.RSAPublicKey) -> str:
    """The base64 of ``key``'s ``RSAPublicKey`` struct (no comment); ``ValueError`` unless it is 2048-bit."""
    numbers = key.public_numbers()
    if numbers.n.bit_length() != 2048:
        raise ValueError(f"ADB keys are 2048-bit RSA, got a {numbers.n.bit_length()}-bit modulus")
    r32 = 1 << 32
    n0inv = r32 - pow(numbers.n % r32, -1, r32)
    blob = struct.pack(RSA_PUBLIC_KEY_STRUCT, ANDROID_PUBKEY_MODULUS_SIZE_WORDS, n0inv,
                       numbers.n.to_bytes(ANDROID_PUBKEY_MODULUS_SIZE, "little"),
                       pow(1 << 2048, 2, numbers.n).to_bytes(ANDROID_PUBKEY_MODULUS_SIZE, "little"), numbers.e)
    return base64.b64encode(blob).decode("ascii")


def signature_valid(key: rsa.RSAPublicKey, token: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s PKCS#1 v1.5 signature of ``token`` taken as a SHA-1 digest."""
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
    except InvalidSignature:
        return False
    return True


class AuthorizedKeys:
    """The phone's ``adb_keys`` file: one ``BASE64 user@host`` line per key the user allowed."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line.strip() for line in self.path.read_text().splitlines() if line.strip()]

    def add(self, public_key: str | bytes) -> str:
        """Store a key as it came in ``AUTH RSAPUBLICKEY`` (once); the stored line. ``ValueError`` if invalid."""
        decode_android_public_key(public_key)
        line = public_key.rstrip(b"\0").decode("ascii") if isinstance(public_key, bytes) else public_key
        line = line.strip()
        with self._lock:
            if line not in self.lines():
                with self.path.open("a") as stream:
                    stream.write(line + "\n")
        return line

    def accepts(self, token: bytes, signature: bytes) -> bool:
        """Whether any stored key signed ``token``; lines that do not decode are skipped (and logged)."""
        for line in self.lines():
            try:
                key = decode_android_public_key(line)
            except ValueError as exc:
                _LOG.warning("%s: skipping an unreadable key line: %s", self.path, exc)
                continue
            if signature_valid(key, token, signature):
                return True
        return False
