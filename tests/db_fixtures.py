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
HOST_ID = "test-host"  # conftest sets AKD_TF_HOST_ID to it for every test
HOST_DEVICE = f"local@{HOST_ID}"  # what the device 'local' is stored as in the tests


def tiny_space():
    """A two-block space with 8 operator keys at 32x32, so a whole latency table builds in seconds.

    Registered on first call in each process (spawned test workers call it too).
    """
    from akd_tf.space import BlockOptions, BlockSkeleton, ConvOp, SearchSpace, get_space, register_space

    try:
        return get_space("lut-test")
    except ValueError:
        return register_space(SearchSpace(
            name="lut-test", stem_filters=8, head_filters=32,
            skeleton=(BlockSkeleton(stride=2, filters=16, layers=1), BlockSkeleton(stride=1, filters=16, layers=1)),
            block_options=(BlockOptions(conv_ops=(ConvOp("dwconv", "dwconv"), ConvOp("mbconv3", "mbconv", 3)),
                                        kernels=(3,), se_ratios=(0.0,), skip_ops=("noskip", "id"),
                                        width_multipliers=(1.0,), layer_deltas=(0, 1)),)))


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


def device_table(store, device_name: str, quantization: str = "none", space: str = "test") -> int:
    """The id of a table version of ``device_name`` (made if new) for jobs of kind "lut" to store into."""
    from latency_db.devices import get_device
    from latency_db.tables import TableIdentity, ensure_table

    with store.session() as session:
        device = get_device(session, device_name)
        return ensure_table(session, device, TableIdentity(space, "v1", quantization, 1, device.runtime or "?")).id


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
