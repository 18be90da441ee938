"""Engine, sessions and migrations of the latency database.

:func:`open_store` connects, brings the schema to the newest migration (so
first use needs no set-up step) and returns a :class:`Store`. SQLite runs in
WAL mode with a busy timeout, and every transaction starts with ``BEGIN
IMMEDIATE`` so several processes can write at once without losing rows or
failing on lock upgrades. PostgreSQL (psycopg 3) gets a bounded connect
timeout. Errors name the URL with its password masked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from akd_tf.errors import InvalidInput
from latency_db.config import mask_url, resolve_url

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 10


def _alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Builds with SECURE_DELETE zero every freed page: releasing a 4 MB job model cost 40-100 ms.
            # FAST zeroes deleted content only where that adds no I/O (measured 3-11 ms).
            cursor.execute("PRAGMA secure_delete=FAST")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # a bare scheme means psycopg 3, the driver akd-tf installs
            url = parsed.set(drivername="postgresql+psycopg")
        return create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, pool_pre_ping=True)
    return create_engine(url)


@dataclass
class Store:
    """An open latency database: ``session()`` gives one unit of work."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        with self._sessions() as session:
            with session.begin():
                yield session

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        with self._migrating() as connection:
            command.upgrade(_alembic_config(connection), revision)

    def downgrade(self, revision: str) -> None:
        with self._migrating() as connection:
            command.downgrade(_alembic_config(connection), revision)

    @contextlib.contextmanager
    def _migrating(self) -> Iterator[Connection]:
        """A connection in one transaction, for migrations. On SQLite its foreign keys are off meanwhile (and on
        again after): SQLite alters a constraint by recreating the table, and dropping the old table with foreign
        keys on deletes every row that points at it (``ON DELETE CASCADE``). They cannot be switched inside a
        transaction, so here, before it begins; a migration that recreates a table checks them before it ends."""
        with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    yield connection
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, upgrade: bool = True) -> Store:
    """Connect to ``url`` (resolved by :func:`latency_db.config.resolve_url`) and migrate it to the newest schema."""
    url = resolve_url(url)
    try:
        store = Store(url, _make_engine(url))
        if upgrade and store.revision() != head_revision():
            store.upgrade()
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        raise InvalidInput(f"cannot open the latency database {mask_url(url)}: {reason}") from None
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"cannot open the latency database {mask_url(url)}: driver missing ({exc.name})") from None
    return store
