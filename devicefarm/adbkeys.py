"""This computer's ADB key pair, the one Android's own ``adb`` uses.

The private key is ``adbkey`` (PKCS#8 PEM) and the public key ``adbkey.pub``
(Android's RSAPublicKey struct in base64, then `` user@host``) in
``$ANDROID_USER_HOME`` or ``~/.android``; ``AKD_TF_ADB_KEY`` or ``--adb-key``
point elsewhere. A missing pair is generated (2048-bit RSA) with the private key
created ``0600`` from the start; an existing private key readable by others is
tightened to ``0600``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from akd_tf.errors import InvalidInput

KEY_ENV = "AKD_TF_ADB_KEY"


def default_key_path() -> Path:
    """``$AKD_TF_ADB_KEY``, else ``$ANDROID_USER_HOME/adbkey``, else ``~/.android/adbkey``."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    if os.environ.get("ANDROID_USER_HOME"):
        return Path(os.environ["ANDROID_USER_HOME"]).expanduser() / "adbkey"
    return Path.home() / ".android" / "adbkey"


def public_key_path(private_key: Path) -> Path:
    return private_key.with_name(private_key.name + ".pub")


def ensure_key_pair(private_key: Path | str | None = None) -> Path:
    """The private key's path, generating the pair if it is missing (and the public half if only it is)."""
    from adb_shell.auth.keygen import keygen, write_public_keyfile

    path = Path(private_key).expanduser() if private_key else default_key_path()
    if path.is_dir():
        raise InvalidInput(f"ADB key path {path} is a directory; expected the private key file "
                           "(e.g. ~/.android/adbkey)")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # never world-readable, not even briefly
        keygen(str(path))
    elif path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)
    if not public_key_path(path).exists():
        write_public_keyfile(str(path), str(public_key_path(path)))
    return path


def load_signer(private_key: Path):
    """An adb-shell signer for the pair at ``private_key``; unreadable keys raise ``ValueError`` naming the file."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    try:
        return PythonRSASigner(public_key_path(private_key).read_text(), private_key.read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"cannot load the ADB key pair {private_key}{{,.pub}}: {error}") from error
