"""search runs and trials: the architecture searches and every child they evaluated

Revision ID: 0005
Revises: 0004

``search_runs`` holds a search's settings, budget and controller state (saved in the same transaction
that adds the next controller step's trials, so a resumed search continues where it stopped);
``trials`` one row per child (arch, latency and its source, proxy accuracy, reward, status, timings).
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("search_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("space", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("controller", sa.String(length=32), nullable=False),
        sa.Column("reward", sa.String(length=32), nullable=False),
        sa.Column("reward_source", sa.String(length=16), nullable=False),
        sa.Column("target_ms", sa.Float(), nullable=True),
        sa.Column("target_mmacs", sa.Float(), nullable=True),
        sa.Column("trials_budget", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("controller_step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("controller_state", sa.LargeBinary(), nullable=True),
        sa.Column("controller_stats", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name")
    )
    op.create_table("trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("arch", sa.String(length=1024), nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=False),
        sa.Column("log_prob", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mmacs", sa.Float(), nullable=False),
        sa.Column("params", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("latency_source", sa.String(length=16), nullable=True),
        sa.Column("measurement_id", sa.Integer(), nullable=True),
        sa.Column("latency_seconds", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("train", sa.JSON(), nullable=True),
        sa.Column("train_seconds", sa.Float(), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("reward_terms", sa.JSON(), nullable=True),
        sa.Column("worker", sa.String(length=256), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["search_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "number", name="uq_trials_run_number")
    )
    op.create_index("ix_trials_run_status", "trials", ["run_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trials_run_status", table_name="trials")
    op.drop_table("trials")
    op.drop_table("search_runs")
