"""Player links: what a studio backend told us about whose a store purchase is.

A receipt posted with a player links the store's ids (a transaction, its original transaction, an
account token...) to that player, once: an id already linked to another player is a conflict. A
notification that names no player looks its ids up here; an order held as ``player_unresolved``
is fulfilled when a receipt links one of its ids.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware.ledger import repository as repo
from middleware.ledger.models import PlayerLink, utcnow

Key = tuple[str, str]  # (kind, value)


def link(session: Session, namespace: str, source: str, player_id: str, keys: list[Key]) -> dict[Key, str]:
    """Link every key to ``player_id`` unless it is linked already; returns the keys linked to someone else."""
    insert = repo.dialect_insert(session)
    now = utcnow()
    for kind, value in keys:
        session.execute(insert(PlayerLink).values(namespace=namespace, source=source, kind=kind, value=value,
                                                  player_id=player_id, created_at=now)
                        .on_conflict_do_nothing(index_elements=["source", "kind", "value"]))
    owners = _owners(session, source, keys)
    return {key: owner for key, owner in owners.items() if owner != player_id}


def _owners(session: Session, source: str, keys: list[Key]) -> dict[Key, str]:
    if not keys:
        return {}
    values = [value for _, value in keys]
    rows = session.execute(select(PlayerLink.kind, PlayerLink.value, PlayerLink.player_id)
                           .where(PlayerLink.source == source, PlayerLink.value.in_(values))).all()
    wanted = set(keys)
    return {(kind, value): player for kind, value, player in rows if (kind, value) in wanted}


def find_player(session: Session, source: str, keys: list[Key]) -> str | None:
    """The player linked to the first of ``keys`` that has a link (keys in order of trust)."""
    owners = _owners(session, source, keys)
    for key in keys:
        if key in owners:
            return owners[key]
    return None
