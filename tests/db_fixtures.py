"""Database fixtures: a fresh SQLite file per test, and a fresh PostgreSQL database when a server is given.

``AKD_TF_TEST_POSTGRES_URL`` (for example ``postgresql+psycopg://akd@127.0.0.1:5433/postgres``) points at a
server where the test user may create databases; `.ci/run` starts one. Under CI (``CI=true``) the
PostgreSQL cases must run, so a missing URL fails them instead of skipping.
"""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ENV = "AKD_TF_TEST_POSTGRES_URL"


def _postgres_database():
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must test the store against a real PostgreSQL server")
        pytest.skip(f"{POSTGRES_ENV} not set: no PostgreSQL server to test against")
    name = f"akd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL of an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'latency.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'latency.db'}"
