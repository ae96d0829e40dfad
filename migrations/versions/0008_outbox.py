"""the transactional outbox: a store event's job is committed with the event (table outbox) and moved to RQ
by the relay (workers/relay.py), so the ingest request never talks to Redis

Revision ID: 0008_outbox
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_outbox'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('job', sa.String(32), nullable=False),
        sa.Column('ref', sa.String(64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('trace', sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('outbox')
