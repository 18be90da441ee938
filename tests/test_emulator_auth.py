"""Android public-key decoding and token signatures (devicefarm.emulator.auth), against adb-shell's keys."""

import base64
import struct

import pytest
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from cryptography.hazmat.primitives import serialization

from devicefarm.emulator.auth import (RSA_PUBLIC_KEY_STRUCT, AuthorizedKeys, decode_android_public_key,
                                      encode_android_public_key, signature_valid)

TOKEN = bytes(range(20))


def _private(path):
    with open(path, "rb") as stream:
        return serialization.load_pem_private_key(stream.read(), password=None)


def _public_text(path):
    with open(path + ".pub") as stream:
        return stream.read()


def test_decode_round_trips_keygen_keys(key_paths):
    for path in key_paths:
        text = _public_text(path)
        key = decode_android_public_key(text + "\0")
        assert key.public_numbers() == _private(path).public_key().public_numbers()
        assert encode_android_public_key(key) == text.split()[0]
        assert decode_android_public_key(text.encode() + b"\0").public_numbers() == key.public_numbers()


def test_signatures_from_the_adb_shell_signer_verify(key_paths):
    one, two = (decode_android_public_key(_public_text(path)) for path in key_paths)
    signature = PythonRSASigner.FromRSAKeyPath(key_paths[0]).Sign(TOKEN)
    assert signature_valid(one, TOKEN, signature)
    assert not signature_valid(two, TOKEN, signature)
    assert not signature_valid(one, bytes(20), signature)


def _corrupt(text, **changes):
    fields = list(struct.unpack(RSA_PUBLIC_KEY_STRUCT, base64.b64decode(text.split()[0])))
    names = ["size_words", "n0inv", "modulus", "rr", "exponent"]
    for name, value in changes.items():
        fields[names.index(name)] = value
    return base64.b64encode(struct.pack(RSA_PUBLIC_KEY_STRUCT, *fields)).decode()


def test_malformed_keys_are_rejected_with_the_reason(key_paths):
    text = _public_text(key_paths[0])
    cases = [
        ("", "empty Android public key; expected base64 of the RSAPublicKey struct"),
        ("@@@@ user@host", "Android public key is not valid base64"),
        (base64.b64encode(b"short").decode(), "Android public key struct is 5 bytes, expected 524"),
        (_corrupt(text, size_words=32), "Android public key modulus_size_words is 32, expected 64"),
        (_corrupt(text, exponent=17), "Android public key exponent is 17, expected 3 or 65537"),
        (_corrupt(text, n0inv=1), "Android public key n0inv 0x00000001 is not -1/n mod 2\\*\\*32"),
        (_corrupt(text, rr=bytes(256)), "Android public key rr is not R\\*\\*2 mod n"),
        (_corrupt(text, modulus=bytes(256)), "Android public key modulus is not an odd 2048-bit number"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            decode_android_public_key(bad)


def test_authorized_keys_file_stores_each_key_once_and_checks_signatures(key_paths, tmp_path):
    keys = AuthorizedKeys(tmp_path / "adb_keys")
    assert keys.lines() == [] and not keys.accepts(TOKEN, b"\0" * 256)
    first = _public_text(key_paths[0])
    assert keys.add(first.encode() + b"\0") == first
    keys.add(first)
    assert (tmp_path / "adb_keys").read_text() == first + "\n"
    with pytest.raises(ValueError, match="Android public key struct is 5 bytes"):
        keys.add(base64.b64encode(b"short"))
    assert keys.accepts(TOKEN, PythonRSASigner.FromRSAKeyPath(key_paths[0]).Sign(TOKEN))
    assert not keys.accepts(TOKEN, PythonRSASigner.FromRSAKeyPath(key_paths[1]).Sign(TOKEN))
    with (tmp_path / "adb_keys").open("a") as stream:  # an unreadable line does not lock everyone out
        stream.write("garbage\n" + _public_text(key_paths[1]) + "\n")
    assert keys.accepts(TOKEN, PythonRSASigner.FromRSAKeyPath(key_paths[1]).Sign(TOKEN))
