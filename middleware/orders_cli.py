"""``flask orders``: look at an order and fix it from a shell (list, show, retry, revoke, resolve).

Whoever can run this can already reach the database, so it asks for no token; every change it
makes goes through the same service as the ops API (``middleware.ops``), needs a ``--reason``, and is
recorded in the audit log and the order's history as ``cli:<login>``.
"""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select

from . import ops
from .ledger import repository as repo
from .ledger import states
from .ledger.models import Fulfilment, InboundEvent, Reversal
from .services import services

orders = AppGroup("orders", help="Look at orders and fix them: list, show, retry, revoke, resolve.")


def _find(session, ref: str) -> Fulfilment:
    """An order by its id, or by its store transaction id (a Checkout Session id...)."""
    f = session.get(Fulfilment, ref)
    if f is None:
        found = session.scalars(select(Fulfilment).where(Fulfilment.transaction_id == ref)).all()
        if len(found) > 1:
            raise click.ClickException(f"{len(found)} orders have transaction id {ref}: give the order id")
        f = found[0] if found else None
    if f is None:
        raise click.ClickException(f"no order {ref}")
    return f


@orders.command("list")
@click.option("--state", type=click.Choice(states.STATES), help="Only orders in this state.")
@click.option("--attention", is_flag=True, help="Only orders flagged for review (partial refunds, disputes...).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
def list_orders(state, attention, limit):
    """The most recent orders, newest first."""
    stmt = select(Fulfilment).order_by(Fulfilment.updated_at.desc()).limit(limit)
    if state:
        stmt = stmt.where(Fulfilment.state == state)
    if attention:
        stmt = stmt.where(Fulfilment.attention.is_not(None))
    with services().session() as session:
        for f in session.scalars(stmt):
            note = f.attention or f.reason or ""
            click.echo(f"{f.id}  {f.state:<14} {f.source:<10} {f.transaction_id}  {f.player_id or '-'}  {note}")


@orders.command("show")
@click.argument("ref")
def show(ref):
    """An order (by id or store transaction id): its rows, history, refunds and disputes, store events."""
    with services().session() as session:
        f = _find(session, ref)
        f = repo.load(session, f.id, history=True)
        out = {"id": f.id, "namespace": f.namespace, "source": f.source, "transaction_id": f.transaction_id,
               "player_id": f.player_id, "environment": f.environment, "state": f.state, "reason": f.reason,
               "attention": f.attention, "lookup": f.lookup, "attempts": f.attempts,
               "items": [{"line": i.line_no, "component": i.component_no, "sku": i.sku, "kind": i.kind,
                          "target": i.target, "amount": i.amount, "revoked": i.revoked_amount, "state": i.state,
                          "error": i.error} for i in f.items],
               "history": [{"at": h.at.isoformat(), "actor": h.actor, "from": h.from_state, "to": h.to_state,
                            "detail": h.detail} for h in f.history],
               "reversals": [{"key": r.reversal_key, "kind": r.kind, "state": r.state, "outcome": r.outcome,
                              "amount": r.amount, "total": r.total}
                             for r in session.scalars(select(Reversal).where(Reversal.fulfilment_id == f.id))],
               "store_events": [{"id": e.provider_event_id, "type": e.event_type, "outcome": e.outcome,
                                 "detail": e.detail}
                                for e in session.scalars(select(InboundEvent).where(InboundEvent.fulfilment_id == f.id)
                                                         .order_by(InboundEvent.id))]}
    click.echo(json.dumps(out, indent=2, default=str))


def _act(ref: str, action: str, reason: str, **kw) -> None:
    with services().session() as session:
        fulfilment_id = _find(session, ref).id
    try:
        done = ops.perform(services(), ops.Actor.cli(), fulfilment_id, action, reason, **kw)
    except ops.OpsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{fulfilment_id}: {done['state']}")


REASON = click.option("--reason", required=True, help="Why (recorded in the audit log and the history).")


@orders.command("retry")
@click.argument("ref")
@REASON
@click.option("--player", help="The player, for an order failed with player_unresolved (attaches it).")
def retry(ref, reason, player):
    """Retry a FULFILL_FAILED order (failed rows again) or a REVOKE_FAILED one (take-backs again)."""
    if player:
        _act(ref, ops.ATTACH_PLAYER, reason, player_id=player)
    else:
        _act(ref, ops.RETRY, reason)


@orders.command("revoke")
@click.argument("ref")
@REASON
def revoke(ref, reason):
    """Take back everything the order granted."""
    _act(ref, ops.REVOKE, reason)


@orders.command("resolve")
@click.argument("ref")
@REASON
def resolve(ref, reason):
    """Close a FULFILL_FAILED or REVOKE_FAILED order as RESOLVED, granting nothing more."""
    _act(ref, ops.RESOLVE, reason)
