"""search by any store id a customer quotes, and the home page's counts, each through an index:
payment_refs.ref alone (the ids naming a payment: PaymentIntent, charge, invoice, Google order id...),
reversals.store_ref (the store's own id of a refund or dispute: ``re_…``, ``dp_…``), fulfilments' player
ids by prefix (``text_pattern_ops`` on PostgreSQL), and the flagged orders (``attention`` set).

Backfilled: each Stripe reversal's store_ref from its key (``refund:<id>:<phase>``, ``dispute:<id>:<what>``);
each Google Play one-time purchase's order id (``GPA.…``, kept in the order's "received" history entry)
as a payment ref of the order.

Revision ID: 0009_search
Revises: 0008_outbox
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_search'
down_revision = '0008_outbox'
branch_labels = None
depends_on = None


def _backfill(dialect: str) -> None:
    if dialect == 'postgresql':
        store_ref = "split_part(reversal_key, ':', 2)"
        order_id = "h.detail->>'order_id'"
        event = "h.detail->>'event'"
    else:   # SQLite: the text between the first and the second colon
        store_ref = "substr(substr(reversal_key, instr(reversal_key, ':') + 1), 1, " \
                    "instr(substr(reversal_key, instr(reversal_key, ':') + 1), ':') - 1)"
        order_id = "json_extract(h.detail, '$.order_id')"
        event = "json_extract(h.detail, '$.event')"
    op.execute(f"UPDATE reversals SET store_ref = {store_ref} WHERE source = 'stripe' "
               "AND (reversal_key LIKE 'refund:%:%' OR reversal_key LIKE 'dispute:%:%')")
    op.execute(
        "INSERT INTO payment_refs (source, ref, fulfilment_id, created_at) "
        f"SELECT f.source, {order_id}, f.id, f.created_at FROM fulfilments f "
        "JOIN fulfilment_history h ON h.fulfilment_id = f.id "
        f"WHERE f.source = 'google_play' AND {event} = 'received' AND {order_id} IS NOT NULL "
        f"AND {order_id} <> f.transaction_id "
        "ON CONFLICT (source, ref) DO NOTHING")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('reversals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('store_ref', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_reversals_store_ref', ['store_ref'], unique=False)
    op.create_index('ix_payment_refs_ref', 'payment_refs', ['ref'], unique=False)
    op.create_index('ix_fulfilments_player_prefix', 'fulfilments', ['player_id'], unique=False,
                    postgresql_ops={'player_id': 'text_pattern_ops'})
    op.create_index('ix_fulfilments_flagged', 'fulfilments', ['created_at', 'id'], unique=False,
                    postgresql_where=sa.text('attention IS NOT NULL'),
                    sqlite_where=sa.text('attention IS NOT NULL'))
    _backfill(dialect)


def downgrade() -> None:
    op.drop_index('ix_fulfilments_flagged', table_name='fulfilments')
    op.drop_index('ix_fulfilments_player_prefix', table_name='fulfilments')
    op.drop_index('ix_payment_refs_ref', table_name='payment_refs')
    with op.batch_alter_table('reversals', schema=None) as batch_op:
        batch_op.drop_index('ix_reversals_store_ref')
        batch_op.drop_column('store_ref')
