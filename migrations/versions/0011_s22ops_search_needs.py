"""search and the home page's counts in a few index probes each:

- the player ids by prefix with their games: ``ix_fulfilments_player_prefix`` (player_id, text_pattern_ops on
  PostgreSQL) becomes ``ix_fulfilments_player_ns`` (player_id, namespace): the players a prefix starts are walked
  and their games read from the index alone (no heap row per order of a player with thousands of them);
- the stuck orders (an active state, unchanged since a time): a partial index on ``state_changed_at`` holding the
  active orders only, the predicate exactly the one ``middleware.ops.needs`` counts with.

Revision ID: 0011_s22ops_search_needs
Revises: 0010_console_sign_in
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_s22ops_search_needs'
down_revision = '0010_console_sign_in'
branch_labels = None
depends_on = None

ACTIVE = "state IN ('RECEIVED', 'FULFILLING', 'REVOKING')"   # middleware.ledger.states.ACTIVE, as of this revision


def upgrade() -> None:
    op.create_index('ix_fulfilments_player_ns', 'fulfilments', ['player_id', 'namespace'], unique=False,
                    postgresql_ops={'player_id': 'text_pattern_ops'})
    op.drop_index('ix_fulfilments_player_prefix', table_name='fulfilments')
    op.create_index('ix_fulfilments_stuck', 'fulfilments', ['state_changed_at'], unique=False,
                    postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))


def downgrade() -> None:
    op.drop_index('ix_fulfilments_stuck', table_name='fulfilments')
    op.create_index('ix_fulfilments_player_prefix', 'fulfilments', ['player_id'], unique=False,
                    postgresql_ops={'player_id': 'text_pattern_ops'})
    op.drop_index('ix_fulfilments_player_ns', table_name='fulfilments')
