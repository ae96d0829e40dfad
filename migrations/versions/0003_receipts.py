"""receipts, player links, API keys, store follow-ups and cursors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('key_sha256', sa.String(length=64), nullable=False),
    sa.Column('namespaces', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_sha256'),
    sa.UniqueConstraint('name')
    )
    op.create_table('player_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('player_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'kind', 'value', name='uq_player_link')
    )
    with op.batch_alter_table('player_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_player_links_player_id'), ['player_id'], unique=False)

    op.create_table('store_cursors',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('player_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('followup', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('followup_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('followup_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('followup_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_fulfilments_player_key'), ['player_key'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('fulfilments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fulfilments_player_key'))
        batch_op.drop_column('followup_at')
        batch_op.drop_column('followup_attempts')
        batch_op.drop_column('followup_state')
        batch_op.drop_column('followup')
        batch_op.drop_column('player_key')

    op.drop_table('store_cursors')
    with op.batch_alter_table('player_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_player_links_player_id'))

    op.drop_table('player_links')
    op.drop_table('api_keys')

