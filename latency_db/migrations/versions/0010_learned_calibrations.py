"""learned calibrations: a calibration's method, model, fitted region and cost

Revision ID: 0010
Revises: 0009

Why: a calibration is no longer only the linear ``scale * sum + per-MB * weights + offset``; it may be a
LightGBM model of the ratio of whole-model latency to the table sum (``latency_db.corrections``). A row
now says its ``method``, holds the ``model`` (LightGBM's text format) and the ``library`` that wrote it,
the feature ``region`` it was fitted on (so answers outside it are flagged), Spearman's rho beside
Kendall's tau, and ``measuring_s``, what fitting it cost in measuring time. The linear coefficients are
nullable, without a default: a learned row has none. Existing rows are linear and keep their
coefficients.
"""

from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calibrations") as batch_op:
        batch_op.add_column(sa.Column("method", sa.String(16), nullable=False, server_default="linear"))
        batch_op.add_column(sa.Column("model", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("library", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("region", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("spearman_rho", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("measuring_s", sa.Float(), nullable=True))
        for column in ("scale", "offset_ms"):
            batch_op.alter_column(column, existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("ms_per_weight_mb", existing_type=sa.Float(), nullable=True, server_default=None,
                              existing_server_default="0")


def downgrade() -> None:
    op.execute("DELETE FROM calibrations WHERE method <> 'linear'")
    with op.batch_alter_table("calibrations") as batch_op:
        for column in ("scale", "offset_ms"):
            batch_op.alter_column(column, existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("ms_per_weight_mb", existing_type=sa.Float(), nullable=False, server_default="0")
        for column in ("measuring_s", "spearman_rho", "region", "library", "model", "method"):
            batch_op.drop_column(column)
