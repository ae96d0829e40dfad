"""stores: payment refs, reversals, lookups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('payment_refs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('fulfilment_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fulfilment_id'], ['fulfilments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'ref', name='uq_payment_ref')
    )
    with op.batch_alter_table('payment_refs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_refs_fulfilment_id'), ['fulfilment_id'], unique=False)

    op.create_table('reversals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('reversal_key', sa.String(length=255), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('total', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('fulfilment_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['fulfilment_id'], ['fulfilments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'reversal_key', name='uq_reversal_key')
    )
    with op.batch_alter_table('reversals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reversals_fulfilment_id'), ['fulfilment_id'], unique=False)
        batch_op.create_index('ix_reversals_ref', ['source', 'ref'], unique=False)
        batch_op.create_index('ix_reversals_state', ['state', 'created_at'], unique=False)

    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_amount', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('revoke_to', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lookup', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('attention', sa.Text(), nullable=True))

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_type', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_inbound_outcome_received', ['outcome', 'received_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_outcome_received')
        batch_op.drop_column('attempted_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('event_type')

    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_column('attention')
        batch_op.drop_column('lookup')

    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.drop_column('revoke_to')
        batch_op.drop_column('revoked_amount')

    with op.batch_alter_table('reversals', schema=None) as batch_op:
        batch_op.drop_index('ix_reversals_state')
        batch_op.drop_index('ix_reversals_ref')
        batch_op.drop_index(batch_op.f('ix_reversals_fulfilment_id'))

    op.drop_table('reversals')
    with op.batch_alter_table('payment_refs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_refs_fulfilment_id'))

    op.drop_table('payment_refs')

