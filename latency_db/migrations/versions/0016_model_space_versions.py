"""model space versions: a model row says which definition of its search space built it

Revision ID: 0016
Revises: 0015

Why: a model row was named by its space's name and the architecture string alone. Edit a space (a block's
stride, a width) and the same string builds another network, yet a search with ``--measure`` or a
calibration reused the old network's whole-model measurement for it. Latency tables have carried their
space's version since 0009 and search runs since 0013; now model rows do too (``space_version``,
``akd_tf.space.SearchSpace.version``), and it is part of a model's identity, so each definition of a space
has models of its own and a lookup finds only its own.

What existing rows become: no row recorded the definition that built it, so rows of a search space get
version ``legacy``, which is never a space's version: their measurements stay stored (and exported, and
counted under their own version) but no lookup of today's space finds them, and the first ``--measure``
search or calibration that needs one measures it again. Rows of the named-network families (``carved``
students and ``teacher-layer`` micro-models) get ``''``: their keys already name the network (a structure
digest), so they need no version and are reused as before.

SQLite cannot alter a unique constraint, so ``models`` is recreated there; ``measurements`` and ``job_models``
point at it with ``ON DELETE CASCADE``, and dropping the old table with foreign keys on would delete their
rows. ``latency_db.store.Store.upgrade`` turns foreign keys off for a migration's transaction (they cannot be
switched inside one); this migration refuses to run with them on, and checks every key before it ends.

Downgrading removes the version again, so it refuses while one architecture has models of two versions.
"""

from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NAMED_NETWORK_FAMILIES = ("carved", "teacher-layer")  # akd_tf.network_identity, as they were named at 0016
OLD_IDENTITY = ["space", "arch", "resolution", "channels", "classes", "quantization"]
NEW_IDENTITY = ["space", "space_version", "arch", "resolution", "channels", "classes", "quantization"]


def _refuse_enforced_foreign_keys() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0016 recreates the models table, which with SQLite foreign keys on would "
                           "delete every measurement; run it with `akd-tf db upgrade` (or open_store), which "
                           "turns them off for the migration")


def _check_foreign_keys() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration 0016 left {len(broken)} broken foreign keys, first: {tuple(broken[0])}")


def upgrade() -> None:
    _refuse_enforced_foreign_keys()
    op.add_column("models", sa.Column("space_version", sa.String(length=64), nullable=True))
    models = sa.table("models", sa.column("space", sa.String), sa.column("space_version", sa.String))
    op.execute(models.update().values(space_version=sa.case(
        (models.c.space.in_(NAMED_NETWORK_FAMILIES), ""), else_="legacy")))
    with op.batch_alter_table("models") as batch_op:
        batch_op.alter_column("space_version", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_models_identity", type_="unique")
        batch_op.create_unique_constraint("uq_models_identity", NEW_IDENTITY)
    _check_foreign_keys()


def downgrade() -> None:
    _refuse_enforced_foreign_keys()
    bind = op.get_bind()
    columns = ", ".join(OLD_IDENTITY)
    twice = bind.exec_driver_sql(f"SELECT {columns} FROM models GROUP BY {columns} HAVING COUNT(*) > 1").first()
    if twice is not None:
        raise ValueError(f"cannot downgrade below revision 0016: architecture {twice[1]!r} of space {twice[0]!r} "
                         f"has models of more than one space version, which the older schema cannot tell apart")
    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_constraint("uq_models_identity", type_="unique")
        batch_op.create_unique_constraint("uq_models_identity", OLD_IDENTITY)
        batch_op.drop_column("space_version")
    _check_foreign_keys()
