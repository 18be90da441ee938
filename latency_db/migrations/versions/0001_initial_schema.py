"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:57:39.537896
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('serial', sa.String(length=256), nullable=True),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('soc', sa.String(length=256), nullable=True),
    sa.Column('abi', sa.String(length=64), nullable=True),
    sa.Column('os_version', sa.String(length=64), nullable=True),
    sa.Column('core', sa.Integer(), nullable=True),
    sa.Column('governor', sa.String(length=64), nullable=True),
    sa.Column('runtime', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('space', sa.String(length=64), nullable=False),
    sa.Column('arch', sa.String(length=1024), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('channels', sa.Integer(), nullable=False),
    sa.Column('classes', sa.Integer(), nullable=False),
    sa.Column('quantization', sa.String(length=16), nullable=False),
    sa.Column('macs', sa.Integer(), nullable=False),
    sa.Column('params', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('space', 'arch', 'resolution', 'channels', 'classes', 'quantization', name='uq_models_identity')
    )
    op.create_table('calibrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('space', sa.String(length=64), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('channels', sa.Integer(), nullable=False),
    sa.Column('classes', sa.Integer(), nullable=False),
    sa.Column('quantization', sa.String(length=16), nullable=False),
    sa.Column('scale', sa.Float(), nullable=False),
    sa.Column('offset_ms', sa.Float(), nullable=False),
    sa.Column('n_fit', sa.Integer(), nullable=False),
    sa.Column('n_holdout', sa.Integer(), nullable=False),
    sa.Column('within_5_pct', sa.Float(), nullable=False),
    sa.Column('within_10_pct', sa.Float(), nullable=False),
    sa.Column('rmspe', sa.Float(), nullable=False),
    sa.Column('kendall_tau', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calibrations_device_id'), ['device_id'], unique=False)

    op.create_table('lut_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('quantization', sa.String(length=16), nullable=False),
    sa.Column('median_us', sa.Float(), nullable=False),
    sa.Column('mean_us', sa.Float(), nullable=False),
    sa.Column('std_us', sa.Float(), nullable=False),
    sa.Column('min_us', sa.Float(), nullable=False),
    sa.Column('p90_us', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'key', 'quantization', name='uq_lut_device_key')
    )
    with op.batch_alter_table('lut_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lut_entries_device_id'), ['device_id'], unique=False)

    op.create_table('measurements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_key', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('init_us', sa.Float(), nullable=False),
    sa.Column('first_inference_us', sa.Float(), nullable=False),
    sa.Column('warmup_mean_us', sa.Float(), nullable=True),
    sa.Column('median_us', sa.Float(), nullable=False),
    sa.Column('mean_us', sa.Float(), nullable=False),
    sa.Column('std_us', sa.Float(), nullable=False),
    sa.Column('min_us', sa.Float(), nullable=False),
    sa.Column('max_us', sa.Float(), nullable=False),
    sa.Column('p90_us', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('raw_output', sa.Text(), nullable=False),
    sa.Column('thermal_before', sa.JSON(), nullable=True),
    sa.Column('thermal_after', sa.JSON(), nullable=True),
    sa.Column('battery_before', sa.JSON(), nullable=True),
    sa.Column('battery_after', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_key')
    )
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_measurements_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_measurements_model_id'), ['model_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_measurements_model_id'))
        batch_op.drop_index(batch_op.f('ix_measurements_device_id'))

    op.drop_table('measurements')
    with op.batch_alter_table('lut_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lut_entries_device_id'))

    op.drop_table('lut_entries')
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calibrations_device_id'))

    op.drop_table('calibrations')
    op.drop_table('models')
    op.drop_table('devices')
