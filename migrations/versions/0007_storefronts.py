"""orders belong to the storefront that created them: fulfilments.storefront ("" for a store's own orders),
transaction ids unique per (namespace, source, storefront); fulfilments.key_scope scopes the Kraty
idempotency keys of orders recorded from now on by their storefront (NULL: keys as before)

Existing AccelByte-compatible orders get the storefront that created them: the actor of their first
``storefront:<name>`` history entry ("" if there is none: then only ops see the order). Their keys stay.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

PREFIX = 'storefront:'


def _sqlite_foreign_keys(on: bool) -> None:
    """SQLite rebuilds the table to change its unique constraint (copy, drop, rename), which its foreign key
    checks refuse while other tables refer to the orders: they are turned off around the rebuild, as SQLite's
    documentation prescribes for such a change. The pragma only works outside a transaction: the one the
    migrations run in is committed first (the migrations before this one are then done) and begun again.
    The rebuilt table holds the same ids, so every reference still holds (checked before they go back on)."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    if on:
        problems = op.get_bind().exec_driver_sql('PRAGMA foreign_key_check').fetchall()
        assert not problems, f'references broken by the rebuild of fulfilments: {problems}'
    op.execute('COMMIT')
    op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    op.execute('BEGIN IMMEDIATE')


def upgrade() -> None:
    _sqlite_foreign_keys(False)
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storefront', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('key_scope', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE fulfilments SET storefront = COALESCE(("
        f"SELECT substr(h.actor, {len(PREFIX) + 1}) FROM fulfilment_history h "
        f"WHERE h.fulfilment_id = fulfilments.id AND h.actor LIKE '{PREFIX}%' ORDER BY h.id LIMIT 1), '') "
        "WHERE source = 'accelbyte'")
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_constraint('uq_fulfilment_txn', type_='unique')
        batch_op.create_unique_constraint('uq_fulfilment_txn', ['namespace', 'source', 'storefront', 'transaction_id'])
    _sqlite_foreign_keys(True)


def downgrade() -> None:
    # fails if two storefronts have used the same transaction id meanwhile: that cannot be folded back
    _sqlite_foreign_keys(False)
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_constraint('uq_fulfilment_txn', type_='unique')
        batch_op.create_unique_constraint('uq_fulfilment_txn', ['namespace', 'source', 'transaction_id'])
        batch_op.drop_column('key_scope')
        batch_op.drop_column('storefront')
    _sqlite_foreign_keys(True)
