"""trial attempt failures: every failed evaluation attempt of a search's child, with its kind and reason

Revision ID: 0012
Revises: 0014

Why: a child whose evaluation fails for a reason that says nothing about its architecture (a killed
worker, a Ray node that died, a farm job that used up its retries, a conversion crash) is no longer
given reward 0 and learnt from: it is retried with the same proposal, and after the run's
``max_attempts`` it is stored with the new status "excluded" and left out of the controller's update
(``search.failures`` holds the table of which failure is whose fault). ``attempt_failures`` keeps each
failed attempt as ``{"attempt", "kind", "reason"}``, so a child done after a retry still shows what its
earlier attempts met, and an excluded one shows all of them. Rows from before have none; their failed
trials keep the status "failed" and the reward 0 they were learnt from. It follows 0014 (kernel models),
merged with 0013 before it, so that a database already at 0014 gets it too.
"""

from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("attempt_failures", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("attempt_failures")
