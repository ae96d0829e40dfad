"""Ledger rows ──▶ AccelByte result shapes (FulfillmentV2Result, RevokeFulfillmentV2Result, FulfillmentInfo).

Pure: takes a loaded fulfilment (items, and history for FulfillmentInfo) and its game from the catalog.
"""
from __future__ import annotations

from itertools import groupby

from middleware.ledger import states

# kraty-bridge's settled states ──▶ AccelByte's four. RECEIVED, FULFILLING and REVOKING (work still owed,
# retried in the background) have no AccelByte state: the API answers them "not settled yet" (a 503) and
# the query leaves them out, so FULFILL_FAILED / REVOKE_FAILED are final (nothing more happens unless the
# storefront or an operator asks for it).
AB_STATE = {
    states.FULFILLED: "FULFILLED", states.FULFILL_FAILED: "FULFILL_FAILED", states.REVOKED: "REVOKED",
    states.REVOKE_FAILED: "REVOKE_FAILED", states.RESOLVED: "FULFILL_FAILED",  # closed by ops without granting
}
SETTLED = tuple(AB_STATE)
CLAZZ = {"INGAMEITEM": "ENTITLEMENT", "LOOTBOX": "LOOTBOX", "OPTIONBOX": "OPTIONBOX", "MEDIA": "MEDIA",
         "SUBSCRIPTION": "SUBSCRIPTION", "BUNDLE": "ENTITLEMENT"}


def iso(value) -> str | None:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


def ab_state(state: str) -> str:
    """AccelByte's state of a settled order (KeyError for one still in progress: it has none)."""
    return AB_STATE[state]


def _lines(f):
    ordered = sorted(f.items, key=lambda item: (item.line_no, item.component_no))
    return [(line_no, list(rows)) for line_no, rows in groupby(ordered, key=lambda item: item.line_no)]


def _line_item(f, line_no, rows, game) -> dict:
    first, raw = rows[0], f.lines[line_no]
    product = game.by_sku(first.sku) if first.sku else None
    return {"itemId": first.item_id, "itemSku": first.sku, "itemName": product.name if product else None,
            "itemType": first.item_type,
            "quantity": first.line_quantity, "storeId": raw.get("storeId")}


def _components(rows, game) -> list[dict]:
    if rows[0].item_type != "BUNDLE":
        return []
    if rows[0].kind is None:  # the bundle failed as a whole: every member failed with it
        product = game.by_sku(rows[0].sku)
        return [{"itemId": c.item_id, "itemSku": c.sku, "quantity": c.quantity * rows[0].line_quantity,
                 "error": rows[0].error} for c in (product.components if product else ())]
    seen, out = set(), []
    for row in rows:
        if row.component_sku in seen:
            continue
        seen.add(row.component_sku)
        errors = [r.error for r in rows if r.component_sku == row.component_sku and r.error]
        out.append({"itemId": row.component_item_id, "itemSku": row.component_sku,
                    "quantity": row.component_quantity, "error": errors[0] if errors else None})
    return out


def _state_info(f, game, done_states: tuple[str, ...]) -> dict:
    success, failed = [], []
    for _line_no, rows in _lines(f):
        ok = all(row.state in done_states for row in rows)
        error = None if ok else next((row.error for row in rows if row.error), "not completed yet")
        entry = {"itemId": rows[0].item_id, "itemSku": rows[0].sku, "error": error, "items": _components(rows, game)}
        (success if ok else failed).append(entry)
    return {"successList": success, "failedList": failed}


def _entitlement(f, row, game) -> dict:
    """EntitlementSummary of one inventory grant: a stackable entitlement of ``stackedUseCount`` units."""
    product = game.by_sku(row.component_sku) if row.component_sku else None
    return {"id": row.kraty_entry_id or f"{f.id}-{row.line_no}.{row.component_no}", "itemId": row.component_item_id,
            "name": product.name if product else row.component_sku, "type": "CONSUMABLE",
            "clazz": CLAZZ.get(row.item_type, "ENTITLEMENT"), "stackable": True, "stackedUseCount": row.amount,
            "namespace": f.namespace, "userId": f.player_id,
            "createdAt": iso(row.updated_at), "updatedAt": iso(row.updated_at)}


def fulfilment_result(f, game) -> dict:
    """FulfillmentV2Result."""
    granted = [row for row in f.items if row.state == states.ITEM_GRANTED]
    credits: dict[str, int] = {}
    for row in granted:
        if row.kind == "currency":
            credits[row.target] = credits.get(row.target, 0) + row.amount
    entitlements = [_entitlement(f, row, game) for row in granted if row.kind == "item"]
    subscriptions = [{"id": f"{f.id}-{line_no}", "itemId": rows[0].item_id, "sku": rows[0].sku, "status": "ACTIVE",
                      "namespace": f.namespace, "userId": f.player_id}
                     for line_no, rows in _lines(f)
                     if rows[0].item_type == "SUBSCRIPTION" and all(r.state == states.ITEM_GRANTED for r in rows)]
    done = (states.ITEM_GRANTED,) if f.state not in (states.REVOKED, states.REVOKING, states.REVOKE_FAILED) else \
        (states.ITEM_GRANTED, states.ITEM_REVOKED, states.ITEM_SKIPPED)
    return {
        "id": f.id, "namespace": f.namespace, "userId": f.player_id, "transactionId": f.transaction_id,
        "state": ab_state(f.state), "stateReason": f.reason,
        "items": [_line_item(f, line_no, rows, game) for line_no, rows in _lines(f)],
        "stateInfo": _state_info(f, game, done),
        "creditSummaries": [{"walletId": f"{f.player_id}:{currency}", "currencyCode": currency, "amount": amount,
                             "namespace": f.namespace, "userId": f.player_id} for currency, amount in credits.items()],
        "entitlementSummaries": entitlements,
        "subscriptionSummaries": subscriptions,
    }


def _revocation(row) -> dict:
    skipped = row.state == states.ITEM_SKIPPED
    ok = row.state in (states.ITEM_REVOKED, states.ITEM_SKIPPED, states.ITEM_FAILED)
    reason = "never granted" if skipped else (None if ok else (row.error or "not revoked yet"))
    return {"status": "SUCCESS" if ok else "FAIL", "reason": reason, "skipped": skipped}


def revocation_result(f, game) -> dict:
    """RevokeFulfillmentV2Result."""
    rows = [row for row in f.items if row.kind]
    credit = [{"walletId": f"{f.player_id}:{row.target}", "currencyCode": row.target, "amount": row.amount,
               **_revocation(row)} for row in rows if row.kind == "currency"]
    entitlement = [{"entitlementId": row.kraty_entry_id, "itemId": row.component_item_id, "itemSku": row.component_sku,
                    "quantity": row.amount, **_revocation(row)}
                   for row in rows if row.kind == "item"]
    item_revocations = []
    for line_no, line_rows in _lines(f):
        results = [_revocation(row) for row in line_rows]
        failed = [r for r in results if r["status"] == "FAIL"]
        item_revocations.append({"itemId": line_rows[0].item_id, "itemSku": line_rows[0].sku,
                                 "itemType": line_rows[0].item_type, "quantity": line_rows[0].line_quantity,
                                 "status": "FAIL" if failed else "SUCCESS",
                                 "reason": failed[0]["reason"] if failed else None,
                                 "skipped": all(r["skipped"] for r in results)})
    return {
        "id": f"{f.id}-r{f.reversal_seq}", "namespace": f.namespace, "userId": f.player_id,
        "transactionId": f.transaction_id, "state": ab_state(f.state),
        "stateInfo": _state_info(f, game, (states.ITEM_REVOKED, states.ITEM_SKIPPED, states.ITEM_FAILED)),
        "items": [_line_item(f, line_no, line_rows, game) for line_no, line_rows in _lines(f)],
        "creditRevocations": credit, "entitlementRevocations": entitlement, "itemRevocations": item_revocations,
    }


def fulfilment_info(f, game) -> dict:
    """FulfillmentInfo: a query row with the actions taken on it."""
    actions = []
    for entry in f.history:
        if entry.to_state in (states.FULFILLED, states.FULFILL_FAILED) and entry.from_state != entry.to_state:
            actions.append({"action": "FULFILLMENT", "state": entry.to_state, "createdAt": iso(entry.at),
                            "fulfillmentHistoryId": str(entry.id)})
        elif entry.to_state in (states.REVOKED, states.REVOKE_FAILED) and entry.from_state != entry.to_state:
            actions.append({"action": "REVOKE_FULFILLMENT", "state": entry.to_state, "createdAt": iso(entry.at),
                            "revocationHistoryId": str(entry.id)})
    result = fulfilment_result(f, game)
    return {"id": f.id, "namespace": f.namespace, "userId": f.player_id, "transactionId": f.transaction_id,
            "state": result["state"], "stateInfo": result["stateInfo"],
            "items": result["items"], "createdAt": iso(f.created_at), "updatedAt": iso(f.updated_at),
            "actions": actions}


def refused_entry(namespace: str, user_id: str, transaction_id: str, lines: list[dict], code, message: str) -> dict:
    """A bulk entry refused as a single PUT would be (nothing stored: no ``id``), in FulfillmentV2Result's own
    fields so an SDK client reads why: ``stateReason`` and every line's ``failedList`` entry say
    ``<errorCode>: <message>``. FULFILL_FAILED is final here: nothing was recorded, nothing will be granted."""
    error = f"{code}: {message}"
    return {"namespace": namespace, "userId": user_id, "transactionId": transaction_id, "state": "FULFILL_FAILED",
            "stateReason": error,
            "items": [{"itemId": line.get("itemId"), "itemSku": line.get("itemSku"), "quantity": line["quantity"]}
                      for line in lines],
            "stateInfo": {"successList": [], "failedList": [
                {"itemId": line.get("itemId"), "itemSku": line.get("itemSku"), "error": error, "items": []}
                for line in lines]},
            "creditSummaries": [], "entitlementSummaries": [], "subscriptionSummaries": []}
