"""Turn order lines into ledger rows: one row per (line, Kraty grant component), resolved through the catalog."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from config.catalog import Game, Product

from middleware.ledger import states
from middleware.ledger.models import FulfilmentItem

# AccelByte's error codes double as our per-line failure codes.
UNKNOWN_ITEM_ID = "30341"
UNKNOWN_SKU = "30343"
UNSUPPORTED_TYPE = "38130"
AMOUNT_TOO_LARGE = "amount_too_large"
UNKNOWN_PRODUCT = "unknown_product"  # a store's product id that no catalog entry lists
UNREADABLE_LINE = "store_line_unreadable"  # a store line that names no product or no quantity (its ``error``)
NOT_IDS = ("store", "quantity", "description", "error")
MAX_AMOUNT = 2**53  # keep totals exact in JSON everywhere


@dataclass(frozen=True)
class Resolved:
    line: dict
    product: Product | None
    error_code: str | None = None
    error: str | None = None


def _line_key(line: dict) -> tuple:
    if "store" in line:  # a line a store's API listed (see store_line)
        return (line["store"], line.get("price") or "", line.get("product") or "", int(line["quantity"]))
    return (line.get("itemId") or "", line.get("itemSku") or "", int(line["quantity"]))


def request_hash(lines: list[dict]) -> str:
    """A digest of what was ordered (item and quantity per line, order-insensitive)."""
    canonical = sorted(_line_key(line) for line in lines)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def store_line(store: str, quantity: int, **ids) -> dict:
    """An order line as a store names it: ``ids`` are that store's product ids (price, product,
    lookup_key...), tried in the given order against the catalog's ``store_ids``."""
    return {"store": store, **ids, "quantity": quantity}


def _resolve_store_line(game: Game, line: dict) -> tuple[Product | None, str | None]:
    ids = [value for key, value in line.items() if key not in NOT_IDS and value]
    for value in ids:
        product = game.by_store_id(line["store"], value)
        if product is not None:
            return product, None
    named = ", ".join(f"{key} {value}" for key, value in line.items()
                      if key not in NOT_IDS and value)
    return None, f"{line['store']} {named or 'line'} is not in the catalog of {game.namespace}"


def resolve_line(game: Game, line: dict) -> Resolved:
    item_id, sku = line.get("itemId"), line.get("itemSku")
    if line.get("error"):
        return Resolved(line, None, UNREADABLE_LINE, line["error"])
    if "store" in line:
        product, missing = _resolve_store_line(game, line)
        if product is None:
            return Resolved(line, None, UNKNOWN_PRODUCT, missing)
    else:
        product = game.by_item_id(item_id) if item_id else game.by_sku(sku)
    if product is None:
        if item_id:
            return Resolved(line, None, UNKNOWN_ITEM_ID,
                            f"Item [{item_id}] does not exist in namespace [{game.namespace}]")
        return Resolved(line, None, UNKNOWN_SKU, f"Item of sku [{sku}] does not exist in namespace [{game.namespace}]")
    if not product.supported:
        return Resolved(line, product, UNSUPPORTED_TYPE, product.unsupported_reason or "item cannot be fulfilled")
    largest = max((grant.amount * component.quantity for component, grant in product.grant_plan()), default=0)
    if largest * int(line["quantity"]) > MAX_AMOUNT:
        return Resolved(line, product, AMOUNT_TOO_LARGE,
                        f"{line['quantity']} x {product.sku} grants more than {MAX_AMOUNT} of one currency or item")
    return Resolved(line, product)


def largest_total(resolved_lines: list[Resolved]) -> tuple[int, str, str] | None:
    """The largest amount the order grants of one currency or item, summed over its lines (quantity x
    bundle nesting x amount): (total, kind, key), or None if it grants nothing."""
    totals: dict[tuple[str, str], int] = {}
    for resolved in resolved_lines:
        if resolved.product is None or resolved.error_code not in (None, AMOUNT_TOO_LARGE):
            continue
        quantity = int(resolved.line["quantity"])
        for component, grant in resolved.product.grant_plan():
            key = (grant.kind, grant.key)
            totals[key] = totals.get(key, 0) + grant.amount * component.quantity * quantity
    if not totals:
        return None
    (kind, key), total = max(totals.items(), key=lambda pair: pair[1])
    return total, kind, key


def item_rows(line_no: int, resolved: Resolved, created_at: datetime | None = None) -> list[FulfilmentItem]:
    """The rows of one order line; an unresolvable line gets one FAILED row saying why. ``created_at``: the
    order's (see build_items)."""
    line, product = resolved.line, resolved.product
    quantity = int(line["quantity"])
    common = dict(line_no=line_no, line_quantity=quantity, order_created_at=created_at,
                  sku=product.sku if product else line.get("itemSku"),
                  item_id=product.item_id if product else line.get("itemId"),
                  item_type=product.type if product else None)
    if resolved.error_code:
        return [FulfilmentItem(component_no=0, component_sku=common["sku"], component_item_id=common["item_id"],
                               component_quantity=quantity, kind=None, target=None, amount=0,
                               state=states.ITEM_FAILED, error_code=resolved.error_code, error=resolved.error,
                               **common)]
    rows = []
    for component_no, (component, grant) in enumerate(product.grant_plan()):
        units = component.quantity * quantity
        rows.append(FulfilmentItem(component_no=component_no, component_sku=component.sku,
                                   component_item_id=component.item_id, component_quantity=units, kind=grant.kind,
                                   target=grant.key, amount=grant.amount * units, state=states.ITEM_PENDING,
                                   **common))
    return rows


def build_items(resolved_lines: list[Resolved], created_at: datetime | None = None) -> list[FulfilmentItem]:
    """The item rows of an order; ``created_at``: the order's (each row keeps a copy for the SKU filter; left
    None, the row takes it from its order when inserted)."""
    rows: list[FulfilmentItem] = []
    for line_no, resolved in enumerate(resolved_lines):
        rows.extend(item_rows(line_no, resolved, created_at))
    return rows


def key_source(source: str, key_scope: str | None) -> str:
    """The source part of an order's Kraty idempotency keys: ``accelbyte/<storefront>/`` for a storefront's
    order recorded since 0007 (two storefronts may use the same transaction id), the plain source otherwise
    (orders recorded before keep their keys). Storefront names have no ``/`` (and may have ``:``): the
    second ``/`` ends the name, and the plain keys go on with ``:``, so no two orders' keys meet."""
    return f"{source}/{key_scope}/" if key_scope else source


def grant_key(source: str, transaction_id: str, item: FulfilmentItem) -> str:
    """Kraty idempotency key of a grant: derived from stored data only, new per reversal cycle."""
    return f"{source}:{transaction_id}:{item.line_no}.{item.component_no}:grant:{item.cycle}"


def grant_amount(item: FulfilmentItem) -> int:
    """What a grant gives: the row's amount less what was taken back (or refunded) before it was granted."""
    return item.amount - item.revoked_amount


def revoke_target(item: FulfilmentItem) -> int:
    """How much of the row the current take-back wants gone in all (the whole row unless partial)."""
    return item.amount if item.revoke_to is None else min(item.revoke_to, item.amount)


def revoke_key(source: str, transaction_id: str, item: FulfilmentItem) -> str:
    """Kraty idempotency key of one take-back step, from ``revoked_amount`` up to ``revoke_target``.

    A whole row taken back in one step keeps the plain key; a step of a partial take-back names the
    total it brings the row to, which only ever grows within a cycle, so every step has its own key.
    """
    key = f"{source}:{transaction_id}:{item.line_no}.{item.component_no}:revoke:{item.cycle}"
    target = revoke_target(item)
    if item.revoked_amount == 0 and target == item.amount:
        return key
    return f"{key}:{target}"
