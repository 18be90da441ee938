"""device farm: phone connection facts and leases, nullable p90, the jobs queue

Revision ID: 0003
Revises: 0002

SQLite notes. Making ``p90_us`` nullable needs batch mode's copy-and-rename of ``measurements`` and
``lut_entries``; that is safe because no table references them yet (``jobs`` is created afterwards and
dropped first). ``devices`` must never be copied and dropped that way: the store runs migrations with
foreign keys on, and dropping ``devices`` would cascade-delete every measurement, LUT entry and
calibration. Its columns are therefore added and dropped in place (``recreate="never"``; SQLite has
``ALTER TABLE ... DROP COLUMN`` since 3.35).
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DEVICE_COLUMNS = ("address", "properties", "benchmark_binary", "consecutive_failures", "lease_holder",
                  "lease_expires_at")


def upgrade() -> None:
    with op.batch_alter_table("devices", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("properties", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("benchmark_binary", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lease_holder", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    for table in ("measurements", "lut_entries"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("p90_us", existing_type=sa.Float(), nullable=True)

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("tflite", sa.LargeBinary(), nullable=False),
        sa.Column("tflite_sha256", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
        sa.Column("lease_holder", sa.String(length=256), nullable=True),
        sa.Column("leased_device_id", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_device_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("raw_output", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("measurement_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["leased_device_id"], ["devices.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["last_device_id"], ["devices.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_key"),
    )
    op.create_index("ix_jobs_device_id", "jobs", ["device_id"], unique=False)
    op.create_index("ix_jobs_pool_state", "jobs", ["pool", "state"], unique=False)


def downgrade() -> None:
    connection = op.get_bind()
    missing = {table: connection.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE p90_us IS NULL"))
               for table in ("measurements", "lut_entries")}
    if any(missing.values()):
        raise ValueError(f"cannot downgrade below revision 0003: {missing['measurements']} measurement(s) and "
                         f"{missing['lut_entries']} LUT entr(y/ies) have no p90_us (Android's benchmark_model "
                         f"reports none), which revision 0002 requires; delete those rows first")
    op.drop_index("ix_jobs_pool_state", table_name="jobs")
    op.drop_index("ix_jobs_device_id", table_name="jobs")
    op.drop_table("jobs")
    for table in ("measurements", "lut_entries"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("p90_us", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("devices", recreate="never") as batch_op:
        for column in reversed(DEVICE_COLUMNS):
            batch_op.drop_column(column)
