"""How ``flask orders show`` prints an order: a summary, then tables of its rows, its timeline, refunds and
disputes, store events, Kraty webhooks and sink deliveries (the fields of ``GET /v1/fulfilments/{id}``)."""
from __future__ import annotations

import json
from datetime import datetime

from middleware.cli.table import Column, fields, section, state_style, table, when

ITEM_COLUMNS = (
    Column("LINE", "line", align=">"), Column("SKU", "sku", 24), Column("KIND", "kind"),
    Column("TARGET", "target", 24), Column("AMOUNT", "amount", align=">"), Column("REVOKED", "revokedAmount", align=">"),
    Column("STATE", "state", style=state_style), Column("KRATY ENTRY", "kratyLedgerEntryId", 24),
    Column("ERROR", "error", 60),
)
HISTORY_COLUMNS = (
    Column("AT", "at"), Column("ACTOR", "actor", 28), Column("FROM", "from"), Column("TO", "to", style=state_style),
    Column("DETAIL", "detail", 70),
)
REVERSAL_COLUMNS = (
    Column("KEY", "key", 32), Column("KIND", "kind"), Column("STATE", "state", style=state_style),
    Column("AMOUNT", "amount", align=">"), Column("TOTAL", "total", align=">"), Column("CURRENCY", "currency"),
    Column("OUTCOME", "outcome", 60),
)
EVENT_COLUMNS = (
    Column("ID", "id", align=">"), Column("RECEIVED", "receivedAt"), Column("TYPE", "type", 36),
    Column("OUTCOME", "outcome", style=state_style), Column("PROVIDER EVENT", "providerEventId", 40),
    Column("DETAIL", "detail", 60),
)
DELIVERY_COLUMNS = (
    Column("EVENT", "eventId", None), Column("TYPE", "type", 28), Column("SINK", "sink", 20),
    Column("STATE", "state", style=state_style), Column("ATTEMPTS", "attempts", align=">"),
    Column("STATUS", "lastStatus", align=">"), Column("ERROR", "lastError", 50),
)


def _short(value) -> str | None:
    """A history entry's detail in one line: ``key=value`` pairs."""
    if value is None:
        return None
    if isinstance(value, dict):
        return " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, dict | list) else v}"
                        for k, v in value.items())
    return str(value)


def _table_time(value: str | None) -> str | None:
    return when(datetime.fromisoformat(value)) if value else None


def render_detail(d: dict) -> str:
    header = fields([
        ("Order", d["id"]), ("State", d["state"]), ("Reason", d["reason"]), ("Attention", d["attention"]),
        ("Namespace", d["namespace"]), ("Source", d["source"]), ("Transaction", d["transactionId"]),
        ("Player", d["playerId"]), ("Environment", d["environment"]),
        ("Price", f"{d['price']} {d['currency'] or ''}".strip() if d["price"] else None),
        ("Attempts", d["attempts"]), ("Next attempt", _table_time(d["nextAttemptAt"])),
        ("Store follow-up", f"{d['followup']} ({d['followupState']})" if d["followup"] else None),
        ("Created", _table_time(d["createdAt"])), ("Updated", _table_time(d["updatedAt"])),
    ])
    history = [{**h, "at": _table_time(h["at"]), "detail": _short(h["detail"])} for h in d["history"]]
    events = [{**e, "receivedAt": _table_time(e["receivedAt"])} for e in d["inboundEvents"]]
    parts = [header, "", section("Items"), table(ITEM_COLUMNS, d["items"], empty="no items"),
             "", section("Timeline"), table(HISTORY_COLUMNS, history, empty="no history")]
    if d["reversals"]:
        parts += ["", section("Refunds and disputes"), table(REVERSAL_COLUMNS, d["reversals"])]
    parts += ["", section("Store events"), table(EVENT_COLUMNS, events, empty="no store events")]
    if d["kratyWebhooks"]:
        webhooks = [{**e, "receivedAt": _table_time(e["receivedAt"])} for e in d["kratyWebhooks"]]
        parts += ["", section("Kraty webhooks"), table(EVENT_COLUMNS, webhooks)]
    deliveries = [{"eventId": e["eventId"], "type": e["type"], **dl} for e in d["sinkEvents"] for dl in e["deliveries"]]
    if deliveries:
        parts += ["", section("Sink deliveries"), table(DELIVERY_COLUMNS, deliveries)]
    return "\n".join(parts)
