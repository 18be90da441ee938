"""trial networks: the network a child builds, and the trial whose evaluation it reused

Revision ID: 0013
Revises: 0011

Why: many token lists build the same network (the decisions of a removed block, a skip op where no
residual can exist), and a search trained each of them again, spending a child's training on a result it
already had. A trial now stores ``network``, the canonical string of its architecture's canonical form
(``akd_tf.canonical``), equal for two children that build the same network and indexed for the lookup; and
``reused_from``, the trial whose accuracy, latency and training summary a child took instead of training
(a foreign key that becomes NULL if that trial is ever deleted).

What existing rows become: ``network`` stays NULL here, because computing it needs the search space's
definition, which a migration must not freeze; a search fills it in for the runs whose evaluations it may
reuse before it looks any up (``search.runs.fill_networks``). ``reused_from`` is NULL: every existing child
was trained.
"""

from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("network", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_trials_reused_from", "trials", ["reused_from"], ["id"], ondelete="SET NULL")
        batch_op.create_index("ix_trials_network", ["network"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_index("ix_trials_network")
        batch_op.drop_constraint("fk_trials_reused_from", type_="foreignkey")
        batch_op.drop_column("reused_from")
        batch_op.drop_column("network")
