"""privacy and audit: erasures, audit log, prices, Kraty events by player

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_target', ['target_type', 'target_id'], unique=False)

    op.create_table('erasures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('player_sha256', sa.String(length=64), nullable=False),
    sa.Column('placeholder', sa.String(length=64), nullable=False),
    sa.Column('kraty_player_id', sa.String(length=128), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasures_player_sha256'), ['player_sha256'], unique=False)

    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('currency', sa.String(length=8), nullable=True))

    with op.batch_alter_table('outbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fulfilment_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbound_events_fulfilment_id'), ['fulfilment_id'], unique=False)

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('player_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_events_player_id'), ['player_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbound_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_events_fulfilment_id'))
        batch_op.drop_column('fulfilment_id')

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_events_player_id'))
        batch_op.drop_column('player_id')

    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_column('currency')
        batch_op.drop_column('price')

    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_player_sha256'))

    op.drop_table('erasures')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_target')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
