"""job models: a job's .tflite bytes move out of its row into ``job_models``, stored once per SHA-256

Revision ID: 0004
Revises: 0003

Why: SQLite rewrites a whole row, blob included, on every ``UPDATE``, so leasing and completing a job
that carried a 4 MB model cost ~100 ms each; ``jobs`` now names its model by ``model_sha256``.

Upgrade: one ``job_models`` row per distinct ``tflite_sha256``, its bytes taken from the oldest job with
that hash. The runtime rule applies from the start: bytes that only ``done`` jobs name are not kept
(the row, with hash and size, is). Downgrade: ``jobs.tflite`` and ``jobs.tflite_sha256`` come back from
``job_models``; a job whose bytes were released (only ``done`` jobs, which revision 0003 never reads
again: it leases queued jobs only and returns a done job unchanged when asked again) gets an empty blob.

SQLite notes: ``jobs`` is copied and renamed by batch mode; that is safe because no table references it.
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FK_NAME = "fk_jobs_model_sha256"


def upgrade() -> None:
    op.create_table(
        "job_models",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("tflite", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.execute(
        "INSERT INTO job_models (sha256, size_bytes, tflite, created_at) "
        "SELECT j.tflite_sha256, length(j.tflite), "
        "CASE WHEN EXISTS (SELECT 1 FROM jobs k WHERE k.tflite_sha256 = j.tflite_sha256 AND k.state <> 'done') "
        "THEN j.tflite END, j.created_at "
        "FROM jobs j WHERE j.id IN (SELECT min(id) FROM jobs GROUP BY tflite_sha256)")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("model_sha256", sa.String(length=64), nullable=True))
    op.execute("UPDATE jobs SET model_sha256 = tflite_sha256")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("model_sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_foreign_key(FK_NAME, "job_models", ["model_sha256"], ["sha256"])
        batch_op.create_index("ix_jobs_model_sha256", ["model_sha256"], unique=False)
        batch_op.drop_column("tflite")
        batch_op.drop_column("tflite_sha256")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("tflite", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("tflite_sha256", sa.String(length=64), nullable=True))
    op.get_bind().execute(
        sa.text("UPDATE jobs SET tflite_sha256 = model_sha256, tflite = coalesce("
                "(SELECT m.tflite FROM job_models m WHERE m.sha256 = jobs.model_sha256), :empty)")
        .bindparams(sa.bindparam("empty", b"", type_=sa.LargeBinary())))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("tflite", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("tflite_sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_index("ix_jobs_model_sha256")
        batch_op.drop_constraint(FK_NAME, type_="foreignkey")
        batch_op.drop_column("model_sha256")
    op.drop_table("job_models")
