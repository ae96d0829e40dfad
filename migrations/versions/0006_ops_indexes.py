"""ops query indexes: one (filter, created_at, id) index per filter of GET /v1/fulfilments; items carry their
order's created_at so the SKU filter has one too: (sku, order_created_at, fulfilment_id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

FILTERS = (('ix_fulfilments_created', ['created_at', 'id']),
           ('ix_fulfilments_player_created', ['player_id', 'created_at', 'id']),
           ('ix_fulfilments_source_created', ['source', 'created_at', 'id']),
           ('ix_fulfilments_state_created', ['state', 'created_at', 'id']),
           ('ix_fulfilments_env_created', ['environment', 'created_at', 'id']),
           ('ix_fulfilments_txn', ['transaction_id']))


def upgrade() -> None:
    # (namespace, created_at) and (player_id) become (namespace, created_at, id) and (player_id, created_at, id)
    op.drop_index('ix_fulfilments_ns_created', table_name='fulfilments')
    op.drop_index('ix_fulfilments_player', table_name='fulfilments')
    op.create_index('ix_fulfilments_ns_created', 'fulfilments', ['namespace', 'created_at', 'id'], unique=False)
    for name, columns in FILTERS:
        op.create_index(name, 'fulfilments', columns, unique=False)
    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_created_at', sa.DateTime(timezone=True), nullable=True))
    op.execute('UPDATE fulfilment_items SET order_created_at = '
               '(SELECT created_at FROM fulfilments WHERE fulfilments.id = fulfilment_items.fulfilment_id)')
    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.alter_column('order_created_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index('ix_items_sku_created', ['sku', 'order_created_at', 'fulfilment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fulfilment_items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_sku_created')
        batch_op.drop_column('order_created_at')
    for name, _ in reversed(FILTERS):
        op.drop_index(name, table_name='fulfilments')
    op.drop_index('ix_fulfilments_ns_created', table_name='fulfilments')
    op.create_index('ix_fulfilments_player', 'fulfilments', ['player_id'], unique=False)
    op.create_index('ix_fulfilments_ns_created', 'fulfilments', ['namespace', 'created_at'], unique=False)
