"""``flask orders``: look at an order and fix it from a shell (list, show, retry, revoke, resolve).

Whoever can run this can already reach the database, so it asks for no token; every change it
makes goes through the same service as the ops API (``middleware.ops``), needs a ``--reason``, and is
recorded in the audit log and the order's history as ``cli:<login>``. ``list`` and ``show`` print tables,
or with ``--json`` the same objects as ``GET /v1/fulfilments`` and ``GET /v1/fulfilments/{id}``.
"""
from __future__ import annotations

from collections import Counter

import click
from flask.cli import AppGroup
from sqlalchemy import select

from middleware import ops
from middleware.cli.table import (
    ISO_TIME,
    JSON_OPTION,
    YES_OPTION,
    Column,
    echo_json,
    plural,
    progress,
    state_style,
    table,
    when,
)
from middleware.cli.order_detail import render_detail
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, Reversal
from middleware.ops import search as ops_search
from middleware.services import services

orders = AppGroup("orders", help="Look at orders and fix them: list, show, retry, revoke, resolve.")

LIST_COLUMNS = (
    Column("ID", max_width=None), Column("STATE", style=state_style), Column("SOURCE"),
    Column("NAMESPACE", "namespace", 16), Column("TRANSACTION", "transactionId", 32),
    Column("PLAYER", "playerId", 24), Column("UPDATED", "updated"), Column("NOTE", "note", 60),
)
RETRY_STATES = (states.FULFILL_FAILED, states.REVOKE_FAILED)


def _find(session, ref: str) -> Fulfilment:
    """An order by its id, or by its store transaction id (a Checkout Session id...)."""
    f = session.get(Fulfilment, ref) if len(ref) <= 64 else None
    if f is None:
        found = session.scalars(select(Fulfilment).where(Fulfilment.transaction_id == ref)).all()
        if len(found) > 1:
            raise click.ClickException(f"{len(found)} orders have transaction id {ref}: give the order id")
        f = found[0] if found else None
    if f is None:
        raise click.ClickException(f"no order {ref}")
    return f


def _filtered(state, attention, namespace, source, player, since):
    stmt = select(Fulfilment)
    for column, value in ((Fulfilment.state, state), (Fulfilment.namespace, namespace),
                          (Fulfilment.source, source), (Fulfilment.player_id, player)):
        if value:
            stmt = stmt.where(column == value)
    if attention:
        stmt = stmt.where(Fulfilment.attention.is_not(None))
    if since is not None:
        stmt = stmt.where(Fulfilment.updated_at >= ops.utc(since))
    return stmt


def _list_row(f: Fulfilment) -> dict:
    return {**ops.summary(f), "updated": when(f.updated_at), "note": f.attention or f.reason}


@orders.command("list")
@click.option("--state", type=click.Choice(states.STATES), help="Only orders in this state.")
@click.option("--attention", is_flag=True, help="Only orders flagged for review (partial refunds, disputes...).")
@click.option("--namespace", help="Only this game's orders.")
@click.option("--source", type=click.Choice(ops.SOURCES), help="Only orders from this store.")
@click.option("--player", help="Only this player's orders.")
@click.option("--since", type=ISO_TIME, help="Only orders updated at or after this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@JSON_OPTION
def list_orders(state, attention, namespace, source, player, since, limit, as_json):
    """The most recently updated orders, newest first."""
    stmt = _filtered(state, attention, namespace, source, player, since)
    stmt = stmt.order_by(Fulfilment.updated_at.desc(), Fulfilment.id.desc()).limit(limit)
    with services().session() as session:
        rows = [_list_row(f) for f in session.scalars(stmt)]
    if as_json:
        echo_json([{k: v for k, v in row.items() if k not in ("updated", "note")} for row in rows])
    else:
        click.echo(table(LIST_COLUMNS, rows, empty="no orders match"))


@orders.command("search")
@click.argument("q")
@click.option("--namespace", help="Only this game's orders.")
@click.option("--state", type=click.Choice(states.STATES), help="Only orders in this state.")
@click.option("--after", type=ISO_TIME, help="Only orders created at or after this ISO 8601 time.")
@click.option("--before", type=ISO_TIME, help="Only orders created before this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, ops.MAX_PAGE), default=50, show_default=True)
@JSON_OPTION
def search_orders(q, namespace, state, after, before, limit, as_json):
    """Orders named by Q, any id a customer or a store quotes (order, Checkout Session, pi_, ch_/py_, in_, re_,
    dp_, GPA., purchase token, App Store transaction or original transaction id, storefront transaction id,
    player id), and the players whose id starts with Q."""
    query = ops_search.SearchQuery(q=q, namespace=namespace, state=state, created_after=after, created_before=before)
    with services().session() as session:
        try:
            found = ops_search.search(session, ops.Actor.cli(), query, limit)
        except ops.OpsError as exc:
            raise click.ClickException(exc.message) from None
    if as_json:
        echo_json(found)
        return
    rows = [{**row, "updated": row["createdAt"], "note": ops_search.MATCHES[row["matchedBy"]]}
            for row in found["orders"]]
    click.echo(table(LIST_COLUMNS[:-2] + (Column("CREATED", "updated"), Column("MATCHED BY", "note", 40)), rows,
                     empty="no orders match"))
    if found["more"]:
        click.echo("more orders match: narrow the search (--namespace, --state, --after, --before)")
    if found["players"]:
        click.echo("players: " + ", ".join(f"{p['namespace']}/{p['playerId']}" for p in found["players"]))


def _detail(ref: str) -> dict:
    with services().session() as session:
        fulfilment_id = _find(session, ref).id
        try:
            detail = ops.fulfilment_detail(session, ops.Actor.cli(), fulfilment_id)
        except ops.OpsError as exc:
            raise click.ClickException(exc.message) from None
        detail["reversals"] = [
            {"key": r.reversal_key, "source": r.source, "kind": r.kind, "state": r.state, "outcome": r.outcome,
             "amount": r.amount, "total": r.total, "currency": r.currency, "createdAt": ops.iso(r.created_at),
             "appliedAt": ops.iso(r.applied_at)}
            for r in session.scalars(select(Reversal).where(Reversal.fulfilment_id == fulfilment_id)
                                     .order_by(Reversal.id))]
    return detail


@orders.command("show")
@click.argument("ref")
@JSON_OPTION
def show(ref, as_json):
    """An order (by id or store transaction id): a summary, its rows, its timeline, refunds and disputes,
    the store events and Kraty webhooks behind it and what the sinks were sent."""
    detail = _detail(ref)
    if as_json:
        echo_json(detail)
    else:
        click.echo(render_detail(detail))


def _ops_message(exc: ops.OpsError) -> str:
    problems = (exc.details or {}).get("fields")
    if problems:
        return "; ".join(f"{name}: {', '.join(map(str, why)) if isinstance(why, list) else why}"
                         for name, why in problems.items())
    return exc.message


def _act(ref: str, action: str, reason: str, **kw) -> None:
    with services().session() as session:
        fulfilment_id = _find(session, ref).id
    try:
        done = ops.perform(services(), ops.Actor.cli(), fulfilment_id, action, reason, **kw)
    except ops.OpsError as exc:
        raise click.ClickException(_ops_message(exc)) from None
    click.echo(f"{fulfilment_id}: {done['state']}")


REASON = click.option("--reason", required=True, help="Why (recorded in the audit log and the history).")


@orders.command("retry")
@click.argument("ref", required=False)
@REASON
@click.option("--player", help="The player, for an order failed with player_unresolved (attaches it).")
@click.option("--state", type=click.Choice(RETRY_STATES),
              help="Bulk: retry every order in this state (instead of REF).")
@click.option("--since", type=ISO_TIME, help="Bulk: only orders updated at or after this ISO 8601 time.")
@click.option("--namespace", help="Bulk: only this game's orders.")
@click.option("--source", type=click.Choice(ops.SOURCES), help="Bulk: only orders from this store.")
@click.option("--limit", type=click.IntRange(1, 10000), default=1000, show_default=True,
              help="Bulk: at most this many orders (oldest first).")
@YES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Bulk: print each order's outcome as JSON.")
def retry(ref, reason, player, state, since, namespace, source, limit, yes, as_json):
    """Retry a FULFILL_FAILED order (failed rows again) or a REVOKE_FAILED one (take-backs again).

    With --state instead of REF, retry every order in that state (narrowed by --since, --namespace,
    --source), one by one, after a confirmation (--yes skips it), and print a summary of the outcomes."""
    bulk = state or since or namespace or source
    if ref and bulk:
        raise click.UsageError("give REF, or --state (with --since, --namespace, --source) for a bulk retry")
    if not ref:
        if not state:
            raise click.UsageError("give REF (an order id or transaction id), or --state for a bulk retry")
        if player:
            raise click.UsageError("--player attaches one order's player: give REF, not --state")
        _bulk_retry(reason, state, since, namespace, source, limit, yes, as_json)
    elif player:
        _act(ref, ops.ATTACH_PLAYER, reason, player_id=player)
    else:
        _act(ref, ops.RETRY, reason)


def _bulk_retry(reason, state, since, namespace, source, limit, yes, as_json) -> None:
    if not reason.strip():
        raise click.BadParameter("required: why (recorded in the audit log)", param_hint="--reason")
    stmt = _filtered(state, False, namespace, source, None, since)
    stmt = stmt.with_only_columns(Fulfilment.id).order_by(Fulfilment.updated_at, Fulfilment.id).limit(limit)
    with services().session() as session:
        ids = list(session.scalars(stmt))
    if not ids:
        if as_json:
            echo_json([])
        else:
            click.echo(f"no {state} orders match")
        return
    scope = f"{plural(len(ids), state + ' order')}" + (f" updated since {when(since)}" if since else "")
    if not yes:
        click.confirm(f"Retry {scope}?", abort=True, err=True)
    results = []
    actor = ops.Actor.cli()
    with progress(ids, f"retrying {len(ids)} orders") as bar:
        for fulfilment_id in bar:
            try:
                done = ops.perform(services(), actor, fulfilment_id, ops.RETRY, reason)
                results.append({"id": fulfilment_id, "state": done["state"], "error": None})
            except ops.OpsError as exc:
                results.append({"id": fulfilment_id, "state": (exc.details or {}).get("state"),
                                "error": _ops_message(exc)})
    if as_json:
        echo_json(results)
        return
    outcomes = Counter(r["state"] if r["error"] is None else "refused" for r in results)
    click.echo(f"{plural(len(results), 'order')} retried: "
               + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    refused = [r for r in results if r["error"] is not None]
    if refused:
        click.echo(table((Column("ID", max_width=None), Column("STATE", style=state_style),
                          Column("ERROR", "error", 80)), refused))


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
