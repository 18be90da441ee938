"""Where the latency database lives, and how its URL is shown.

The URL comes from ``--db URL``, else ``$AKD_TF_DB``, else a SQLite file in
the user's data directory (``$XDG_DATA_HOME/akd-tf/latency.db``, by default
``~/.local/share/akd-tf/latency.db``). Passwords are never printed: use
:func:`mask_url` for every URL shown in output, logs or errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from akd_tf.errors import InvalidInput

DB_ENV = "AKD_TF_DB"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "akd-tf"


def default_url() -> str:
    return f"sqlite:///{data_dir() / 'latency.db'}"


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: ``url``, else ``$AKD_TF_DB``, else the default SQLite file."""
    chosen = url or os.environ.get(DB_ENV) or default_url()
    try:
        make_url(chosen)
    except ArgumentError:
        raise InvalidInput(f"not a database URL: {mask_url(chosen)!r} (expected e.g. sqlite:///path/latency.db "
                           f"or postgresql+psycopg://user@host/db)") from None
    return chosen


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # not parseable: still hide anything between ':' and '@' of a netloc
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.split("@", 1)
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
        return url
