"""cpu state: the measuring core's cpufreq state before and after a phone measurement

Revision ID: 0011
Revises: 0010

Why: a phone's latency depends on the clock its core ran at, which the governor, thermal caps and
Android's fixed-performance mode decide. A farm worker now reads the measuring core's governor and its
current, minimum and maximum frequencies (``scaling_*`` and ``cpuinfo_max_freq``, in kHz) before and after
each measurement, with whether fixed-performance mode was on, and keeps them beside the thermal and battery
readings. Rows from before, and host measurements, have none.
"""

from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("cpu_before", "cpu_after")


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch_op:
        for column in COLUMNS:
            batch_op.add_column(sa.Column(column, sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
