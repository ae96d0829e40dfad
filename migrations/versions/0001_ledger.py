"""ledger

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('fulfilments',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('transaction_id', sa.String(length=255), nullable=False),
    sa.Column('player_id', sa.String(length=255), nullable=True),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reversal_seq', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'source', 'transaction_id', name='uq_fulfilment_txn')
    )
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.create_index('ix_fulfilments_ns_created', ['namespace', 'created_at'], unique=False)
        batch_op.create_index('ix_fulfilments_player', ['player_id'], unique=False)
        batch_op.create_index('ix_fulfilments_state_updated', ['state', 'updated_at'], unique=False)

    op.create_table('fulfilment_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('fulfilment_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('from_state', sa.String(length=20), nullable=True),
    sa.Column('to_state', sa.String(length=20), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['fulfilment_id'], ['fulfilments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('fulfilment_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fulfilment_history_fulfilment_id'), ['fulfilment_id'], unique=False)

    op.create_table('fulfilment_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('fulfilment_id', sa.String(length=32), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('component_no', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=True),
    sa.Column('item_id', sa.String(length=128), nullable=True),
    sa.Column('item_type', sa.String(length=32), nullable=True),
    sa.Column('line_quantity', sa.Integer(), nullable=False),
    sa.Column('component_sku', sa.String(length=128), nullable=True),
    sa.Column('component_item_id', sa.String(length=128), nullable=True),
    sa.Column('component_quantity', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('target', sa.String(length=64), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=400), nullable=True),
    sa.Column('kraty_entry_id', sa.String(length=128), nullable=True),
    sa.Column('revoke_entry_id', sa.String(length=128), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fulfilment_id'], ['fulfilments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('fulfilment_id', 'line_no', 'component_no', name='uq_item_component')
    )
    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fulfilment_items_fulfilment_id'), ['fulfilment_id'], unique=False)

    op.create_table('inbound_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('provider_event_id', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=True),
    sa.Column('raw_body', sa.LargeBinary(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('fulfilment_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['fulfilment_id'], ['fulfilments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'provider_event_id', name='uq_inbound_source_event')
    )
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_events_fulfilment_id'), ['fulfilment_id'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_events_fulfilment_id'))

    op.drop_table('inbound_events')
    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fulfilment_items_fulfilment_id'))

    op.drop_table('fulfilment_items')
    with op.batch_alter_table('fulfilment_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fulfilment_history_fulfilment_id'))

    op.drop_table('fulfilment_history')
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_index('ix_fulfilments_state_updated')
        batch_op.drop_index('ix_fulfilments_player')
        batch_op.drop_index('ix_fulfilments_ns_created')

    op.drop_table('fulfilments')

