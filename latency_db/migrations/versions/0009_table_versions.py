"""table versions: a latency table says what it measured, and each host has its own device

Revision ID: 0009
Revises: 0008

Why: a device's entries were one pool keyed by (device, key, quantization), so entries timed with another
interpreter, thread count or space definition mixed with older ones, and every host sharing a PostgreSQL
database wrote into the one ``local`` row. A table version (``latency_tables``) now names the device, the
search space and its version, the quantization, the threads and the runtime; entries (unique per table and
key) and calibrations belong to one version.

What existing rows become:

* Entries are grouped into one table per (device, quantization, runtime, threads), the runtime and threads
  read from each entry's stored settings. Imported entries stored no settings: their runtime is recorded as
  ``unknown``; their threads as 1, the only count any akd-tf build has measured with (``LUT_SETTINGS``
  never set another). No entry recorded which search space or which definition of it it was measured for,
  so these tables say so: space ``unknown``, version ``legacy``. They are never a space's current version;
  commands read them when chosen with ``--table ID``. Each table's ``created_at`` is its first entry's
  ``measured_at``.
* Each calibration attaches to its device's table of its quantization holding the most entries (the one its
  fit summed, unless a runtime changed under it); where there is none, to an empty legacy table made for it.
* The ``local`` row held whatever every host sharing the database measured, without saying which host
  measured what, so it cannot be given to one host: it becomes ``local@legacy``, readable by that name and
  measured into by no host (a host run with ``AKD_TF_HOST_ID=legacy`` adopts it). Each host's own
  ``local@HOST`` row is made by its first measurement.
* LUT jobs still queued or leased would store into a legacy table that no command reads by default: they
  are failed with a reason saying so; ``build-lut`` queues them again for the current table version.
  Finished jobs keep their payload (``key`` and ``quantization``) as the record it was.

Downgrading merges every table of a device back into one pool, so it refuses while a device holds the same
key and quantization in two versions, and gives ``local@legacy`` its old name back.
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LEGACY_SPACE, LEGACY_VERSION, UNKNOWN_RUNTIME, LEGACY_THREADS = "unknown", "legacy", "unknown", 1
OLD_HOST, LEGACY_HOST = "local", "local@legacy"
UNFINISHED_LUT_JOB = ("failed by migration 0009: latency tables are versioned now and this job named none; "
                      "run `akd-tf latency build-lut` again to measure into the current version")
CHUNK = 500

devices = sa.table("devices", sa.column("id", sa.Integer), sa.column("name", sa.String))
tables = sa.Table(  # a Table with its primary key, so an insert hands back the new id
    "latency_tables", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.Integer), sa.Column("space", sa.String), sa.Column("space_version", sa.String),
    sa.Column("quantization", sa.String), sa.Column("threads", sa.Integer), sa.Column("runtime", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)))
entries = sa.table("lut_entries", sa.column("id", sa.Integer), sa.column("device_id", sa.Integer),
                   sa.column("quantization", sa.String), sa.column("settings", sa.JSON),
                   sa.column("measured_at", sa.DateTime(timezone=True)), sa.column("table_id", sa.Integer),
                   sa.column("key", sa.String))
calibrations = sa.table("calibrations", sa.column("id", sa.Integer), sa.column("device_id", sa.Integer),
                        sa.column("quantization", sa.String), sa.column("table_id", sa.Integer))
jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("state", sa.String),
                sa.column("payload", sa.JSON), sa.column("error", sa.Text), sa.column("lease_holder", sa.String),
                sa.column("leased_device_id", sa.Integer), sa.column("lease_expires_at", sa.DateTime(timezone=True)),
                sa.column("updated_at", sa.DateTime(timezone=True)),
                sa.column("finished_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.create_table(
        "latency_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("space", sa.String(length=64), nullable=False),
        sa.Column("space_version", sa.String(length=64), nullable=False),
        sa.Column("quantization", sa.String(length=16), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "space", "space_version", "quantization", "threads", "runtime",
                            name="uq_latency_tables_identity"),
    )
    op.create_index("ix_latency_tables_device_id", "latency_tables", ["device_id"], unique=False)
    op.add_column("lut_entries", sa.Column("table_id", sa.Integer(), nullable=True))
    op.add_column("calibrations", sa.Column("table_id", sa.Integer(), nullable=True))
    _sort_into_tables(op.get_bind())

    # SQLite copies these two tables (batch mode); nothing references them, so that deletes nothing.
    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.drop_constraint("uq_lut_device_key", type_="unique")
        batch_op.drop_index("ix_lut_entries_device_id")
        batch_op.drop_column("device_id")
        batch_op.drop_column("quantization")
        batch_op.alter_column("table_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key("fk_lut_entries_table_id", "latency_tables", ["table_id"], ["id"],
                                    ondelete="CASCADE")
        batch_op.create_unique_constraint("uq_lut_entries_table_key", ["table_id", "key"])
    with op.batch_alter_table("calibrations") as batch_op:
        batch_op.drop_index("ix_calibrations_device_id")
        batch_op.drop_column("device_id")
        batch_op.drop_column("quantization")
        batch_op.alter_column("table_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key("fk_calibrations_table_id", "latency_tables", ["table_id"], ["id"],
                                    ondelete="CASCADE")
        batch_op.create_index("ix_calibrations_table_id", ["table_id"], unique=False)


def _sort_into_tables(connection) -> None:
    """Give every entry and calibration its legacy table, rename ``local`` and fail unfinished LUT jobs."""
    now = datetime.now(timezone.utc)
    groups: dict[tuple, list[int]] = {}
    first_measured: dict[tuple, datetime] = {}
    for row in connection.execute(sa.select(entries.c.id, entries.c.device_id, entries.c.quantization,
                                            entries.c.settings, entries.c.measured_at)):
        settings = row.settings if isinstance(row.settings, dict) else {}
        identity = (row.device_id, row.quantization, settings.get("runtime") or UNKNOWN_RUNTIME,
                    settings.get("num_threads") or LEGACY_THREADS)
        groups.setdefault(identity, []).append(row.id)
        if identity not in first_measured or row.measured_at < first_measured[identity]:
            first_measured[identity] = row.measured_at
    table_ids = {identity: _insert_table(connection, identity, first_measured[identity]) for identity in groups}
    for identity, ids in groups.items():
        for start in range(0, len(ids), CHUNK):
            connection.execute(entries.update().where(entries.c.id.in_(ids[start:start + CHUNK]))
                               .values(table_id=table_ids[identity]))
    for row in connection.execute(sa.select(calibrations.c.id, calibrations.c.device_id,
                                            calibrations.c.quantization)).all():
        fitting = [identity for identity in groups if identity[:2] == (row.device_id, row.quantization)]
        if fitting:
            table_id = table_ids[max(fitting, key=lambda i: (len(groups[i]), -table_ids[i]))]
        else:
            identity = (row.device_id, row.quantization, UNKNOWN_RUNTIME, LEGACY_THREADS)
            if identity not in table_ids:
                table_ids[identity] = _insert_table(connection, identity, now)
                groups[identity] = []
            table_id = table_ids[identity]
        connection.execute(calibrations.update().where(calibrations.c.id == row.id).values(table_id=table_id))
    connection.execute(devices.update().where(devices.c.name == OLD_HOST).values(name=LEGACY_HOST))
    connection.execute(jobs.update().where(jobs.c.kind == "lut", jobs.c.state.in_(("queued", "leased")))
                       .values(state="failed", error=UNFINISHED_LUT_JOB, lease_holder=None, leased_device_id=None,
                               lease_expires_at=None, updated_at=now, finished_at=now))


def _insert_table(connection, identity: tuple, created_at: datetime) -> int:
    device_id, quantization, runtime, threads = identity
    return connection.execute(tables.insert().values(
        device_id=device_id, space=LEGACY_SPACE, space_version=LEGACY_VERSION, quantization=quantization,
        threads=threads, runtime=runtime, created_at=created_at)).inserted_primary_key[0]


def downgrade() -> None:
    connection = op.get_bind()
    clashes = connection.execute(
        sa.select(tables.c.device_id, entries.c.key, tables.c.quantization)
        .select_from(entries.join(tables, entries.c.table_id == tables.c.id))
        .group_by(tables.c.device_id, entries.c.key, tables.c.quantization).having(sa.func.count() > 1)).all()
    if clashes:
        raise ValueError(f"cannot downgrade below revision 0009: {len(clashes)} key(s) are stored in several table "
                         f"versions of one device (e.g. {clashes[0].key!r} on device id {clashes[0].device_id}), "
                         f"which revision 0008 cannot hold apart; delete the versions you do not need first")
    quantization_of = dict(connection.execute(sa.select(tables.c.id, tables.c.quantization)).all())
    for table in ("lut_entries", "calibrations"):
        op.add_column(table, sa.Column("device_id", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("quantization", sa.String(length=16), nullable=True))
        owner = sa.table(table, sa.column("table_id", sa.Integer), sa.column("device_id", sa.Integer),
                         sa.column("quantization", sa.String))
        for column in ("device_id", "quantization"):
            connection.execute(owner.update().values({column: sa.select(tables.c[column]).where(
                tables.c.id == owner.c.table_id).scalar_subquery()}))
    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.drop_constraint("uq_lut_entries_table_key", type_="unique")
        batch_op.drop_constraint("fk_lut_entries_table_id", type_="foreignkey")
        batch_op.drop_column("table_id")
        batch_op.alter_column("device_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("quantization", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_foreign_key("fk_lut_entries_device_id", "devices", ["device_id"], ["id"], ondelete="CASCADE")
        batch_op.create_unique_constraint("uq_lut_device_key", ["device_id", "key", "quantization"])
        batch_op.create_index("ix_lut_entries_device_id", ["device_id"], unique=False)
    with op.batch_alter_table("calibrations") as batch_op:
        batch_op.drop_index("ix_calibrations_table_id")
        batch_op.drop_constraint("fk_calibrations_table_id", type_="foreignkey")
        batch_op.drop_column("table_id")
        batch_op.alter_column("device_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("quantization", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_foreign_key("fk_calibrations_device_id", "devices", ["device_id"], ["id"],
                                    ondelete="CASCADE")
        batch_op.create_index("ix_calibrations_device_id", ["device_id"], unique=False)
    for row in connection.execute(sa.select(jobs.c.id, jobs.c.payload).where(jobs.c.kind == "lut")).all():
        if isinstance(row.payload, dict) and "table_id" in row.payload:
            payload = {"key": row.payload["key"], "quantization": quantization_of.get(row.payload["table_id"], "none")}
            connection.execute(jobs.update().where(jobs.c.id == row.id).values(payload=payload))
    if connection.scalar(sa.select(sa.func.count()).where(devices.c.name == OLD_HOST)) == 0:
        connection.execute(devices.update().where(devices.c.name == LEGACY_HOST).values(name=OLD_HOST))
    op.drop_index("ix_latency_tables_device_id", table_name="latency_tables")
    op.drop_table("latency_tables")
