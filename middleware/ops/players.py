"""A player's view: the bridge's orders for the player with totals, beside Kraty's profile."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select



from middleware.kraty.client import KratyError
from middleware.ledger import states
from middleware.ledger.models import (
    Fulfilment,
)
from middleware.services import Services
from middleware.ops.base import Actor, OpsError, PLAYER_ORDERS
from middleware.ops.queries import summary


# -- players ------------------------------------------------------------------------------------------

def player_view(services: Services, actor: Actor, namespace: str, player_id: str,
                limit: int = PLAYER_ORDERS) -> dict:
    """The bridge's orders for a player (newest first, up to ``limit``) with totals, beside Kraty's profile.
    Kraty unreachable or answering an error: ``kraty: {"available": false, "error": ...}``, the rest as usual.

    Totals: orders by state (all of them), and ``paid`` by currency: the price of every production order
    that was not taken back (REVOKED), where the store told the price.
    """
    if not actor.sees(namespace):
        raise OpsError(403, "forbidden", f"this key may not see namespace {namespace}")
    if services.catalog.game(namespace) is None:
        raise OpsError(422, "validation_failed", f"unknown namespace {namespace}",
                       {"fields": {"namespace": ["not a game of the catalog"]}})
    f = Fulfilment
    mine = (f.namespace == namespace, f.player_id == player_id)
    with services.session() as session:
        orders = [summary(row) for row in session.scalars(
            select(f).where(*mine).order_by(f.created_at.desc(), f.id.desc()).limit(limit))]
        by_state = dict(session.execute(select(f.state, func.count()).where(*mine).group_by(f.state)).all())
        priced = session.execute(select(f.price, f.currency).where(
            *mine, f.environment == "production", f.state != states.REVOKED, f.price.is_not(None),
            f.currency.is_not(None))).all()
    paid: Counter = Counter()
    for price, currency in priced:
        try:
            paid[currency.upper()] += Decimal(price)
        except (InvalidOperation, AttributeError):
            continue
    try:
        profile = services.kraty(namespace).player_profile(player_id)
        kraty = {"available": True, "profile": profile}
    except KratyError as exc:
        kraty = {"available": False, "error": str(exc), **({"status": exc.status} if exc.status else {})}
    return {"playerId": player_id, "namespace": namespace, "orders": orders,
            "totals": {"orders": sum(by_state.values()), "byState": by_state,
                       "paid": {currency: str(amount) for currency, amount in sorted(paid.items())}},
            "kraty": kraty}
