"""wide model counts: a model's MACs, parameters and file size as 64-bit integers

Revision ID: 0015
Revises: 0012

Why: ``models.macs`` was a 32-bit INTEGER, which PostgreSQL refuses past 2,147,483,647. ResNet50 at
224x224 has 4.1e9 MACs, so measuring it as the teacher of a subgraph search (or any big model) failed
on PostgreSQL; SQLite stores 64-bit integers in any INTEGER column and never showed it. ``params`` and
``job_models.size_bytes`` widen with it (a float32 model past 2 GB of weights, or its file, would
overflow the same way). Values are kept.

On SQLite nothing changes: any INTEGER column there already holds 64-bit values (the test stores 2**32 + 7
in one), and changing only the declared type would mean recreating ``models`` and ``job_models``, which
other tables' foreign keys point at.
"""

from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None

WIDENED = (("models", "macs"), ("models", "params"), ("job_models", "size_bytes"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in WIDENED:
        op.alter_column(table, column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in WIDENED:
        op.alter_column(table, column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
