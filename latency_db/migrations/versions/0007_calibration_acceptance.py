"""calibration acceptance: a correction worse than the raw table sum is recorded but not used

Revision ID: 0007
Revises: 0006

Why: a calibration fitted on few or noisy archs can predict its own held-out half worse than the raw
lookup-table sum (seen here: RMSPE 78% against 36%), and the predictor used it anyway. Each calibration
now stores the raw sum's RMSPE on the same held-out archs and whether it beat it (``accepted``); the
predictor takes the newest accepted one. Rows from before were all used: they stay accepted.
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calibrations") as batch_op:
        batch_op.add_column(sa.Column("raw_rmspe", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("accepted", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("calibrations") as batch_op:
        batch_op.drop_column("accepted")
        batch_op.drop_column("raw_rmspe")
