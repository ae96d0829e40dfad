"""Sample import files, built by the tests: kraty-bridge's plain columns (CSV, JSON Lines) and RevenueCat's
transactions export (its documented column names, semicolon delimited as RevenueCat delivers it)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

PLAIN_COLUMNS = ["store", "transaction_id", "original_transaction_id", "purchase_token", "payment_intent", "charge",
                 "player_id", "sku", "product_id", "quantity", "price", "currency", "purchased_at", "state"]

# A subset of the columns of RevenueCat's Scheduled Data Export "Transactions" feed (in its order)
RC_COLUMNS = ["rc_original_app_user_id", "rc_last_seen_app_user_id_alias", "country", "product_identifier",
              "start_time", "end_time", "store", "is_auto_renewable", "is_trial_period", "is_sandbox",
              "price_in_usd", "takehome_percentage", "store_transaction_id", "original_store_transaction_id",
              "refunded_at", "unsubscribe_detected_at", "billing_issues_detected_at", "purchased_currency",
              "price_in_purchased_currency", "entitlement_identifiers", "renewal_number"]


def plain_row(txn: str, player: str = "player-1", store: str = "stripe", **kw) -> dict:
    row = {"store": store, "transaction_id": txn, "player_id": player, "sku": "gems_100", "quantity": "1",
           "price": "0.99", "currency": "USD", "purchased_at": "2025-06-01T10:00:00Z", "state": "granted"}
    if store == "stripe" and "payment_intent" not in kw:
        row["payment_intent"] = "pi_" + txn.removeprefix("cs_")
    row.update(kw)
    return {key: value for key, value in row.items() if value is not None}


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None, delimiter: str = ",") -> Path:
    columns = columns or PLAIN_COLUMNS
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, delimiter=delimiter, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in columns})
    return path


def write_jsonl(path: Path, rows: list, bad_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(row) for row in rows] + list(bad_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def rc_row(txn: str, user: str = "player-1", store: str = "app_store", product: str = "com.demo.gems100",
           **kw) -> dict:
    row = {"rc_original_app_user_id": user, "rc_last_seen_app_user_id_alias": user, "country": "US",
           "product_identifier": product, "start_time": "2025-03-01 08:27:06", "end_time": "", "store": store,
           "is_auto_renewable": "false", "is_trial_period": "false", "is_sandbox": "true", "price_in_usd": "0.99",
           "takehome_percentage": "0.7", "store_transaction_id": txn, "original_store_transaction_id": txn,
           "refunded_at": "", "unsubscribe_detected_at": "", "billing_issues_detected_at": "",
           "purchased_currency": "USD", "price_in_purchased_currency": "0.99", "entitlement_identifiers": "[]",
           "renewal_number": "1"}
    row.update(kw)
    return row


def write_revenuecat(path: Path, rows: list[dict]) -> Path:
    return write_csv(path, rows, RC_COLUMNS, delimiter=";")
