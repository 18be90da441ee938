"""repeat spread: how far apart a measurement's repeats were

Revision ID: 0008
Revises: 0007

Why: the host now times a model in several repeats spread in time and takes more until the fastest
repeat's minimum is matched by another (``akd_tf.benchmark.RunSettings``); the spread of the repeats'
minimums (max / min - 1) is kept with each measurement and table entry, so a record says how settled it
was. Rows from before, and phone measurements (one benchmark_model per job), have none.
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("measurements", "lut_entries")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("repeat_spread", sa.Float(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("repeat_spread")
