"""sinks: outbound events, deliveries, sink states, player sequences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbound_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=255), nullable=True),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('player_seq', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbound_events', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_player_seq', ['namespace', 'player_id', 'player_seq'], unique=False)

    op.create_table('player_sequences',
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=255), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'player_id')
    )
    op.create_table('sink_states',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('deliveries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('sink', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['outbound_events.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'sink', name='uq_delivery_event_sink')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_sink_state_created', ['sink', 'state', 'created_at'], unique=False)
        batch_op.create_index('ix_deliveries_state_next', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_state_next')
        batch_op.drop_index('ix_deliveries_sink_state_created')

    op.drop_table('deliveries')
    op.drop_table('sink_states')
    op.drop_table('player_sequences')
    with op.batch_alter_table('outbound_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_player_seq')

    op.drop_table('outbound_events')
