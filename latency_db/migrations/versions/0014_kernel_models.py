"""kernel models: a table version's model of its operators, to price the shapes it never measured

Revision ID: 0014
Revises: 0013

Why: a table version holds entries only at the input resolutions and class counts it was built at, so a
query at another shape failed on its missing keys, and building a table at each new shape costs 8-15
minutes. A kernel model (``latency_db.kernel_models``, after nn-Meter's kernel-level predictors) is
fitted on a version's measured entries and prices an operator from its configuration; ``akd-tf latency
query --price-missing`` uses it for the keys the version lacks and says so. The row belongs to the table
version (deleted with it), keeps the model as data (coefficients and LightGBM's text format, loaded
without running code), the space whose operators the entries were read as, the shapes and number of
entries fitted, each operator kind's fitted region, and its per-entry accuracy on the largest
resolution's entries when fitted without them. Nothing existing changes.
"""

from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kernel_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_id", sa.Integer(), nullable=False),
        sa.Column("space", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("shapes", sa.String(length=256), nullable=False),
        sa.Column("n_entries", sa.Integer(), nullable=False),
        sa.Column("holdout", sa.String(length=256), nullable=True),
        sa.Column("n_holdout", sa.Integer(), nullable=True),
        sa.Column("within_10_pct", sa.Float(), nullable=True),
        sa.Column("rmspe", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["table_id"], ["latency_tables.id"], name="fk_kernel_models_table_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kernel_models_table_id", "kernel_models", ["table_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_kernel_models_table_id", table_name="kernel_models")
    op.drop_table("kernel_models")
