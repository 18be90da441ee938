"""farm polls: when a farm worker last asked for work for each phone

Revision ID: 0006
Revises: 0005

Why: a requester waiting on the farm could not tell a phone that no ``akd-tf devices serve`` worker
serves from one that is only busy, so it waited in silence. Each worker now stamps, per phone, when it
last asked for work (one row per phone, overwritten); nothing else reads or writes the table.
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "farm_polls",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=256), nullable=False),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("farm_polls")
