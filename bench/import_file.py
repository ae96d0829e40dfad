"""Write a past-purchases file of N rows (kraty-bridge's plain CSV) for measuring ``flask import purchases``::

    python -m bench.import_file /tmp/purchases.csv 1000000
    flask --app app import purchases /tmp/purchases.csv --namespace demo     # prints rows/s on stderr

Rows are Stripe Checkout purchases of the demo catalog (one in ten a bundle, one in twenty refunded), each
its own player among 100,000, so the import writes what a studio's history has: orders, item rows, history,
payment refs.
"""
from __future__ import annotations

import csv
import sys

COLUMNS = ["store", "transaction_id", "payment_intent", "player_id", "sku", "quantity", "price", "currency",
           "purchased_at", "state"]


def write(path: str, n: int) -> None:
    with open(path, "w", newline="") as stream:
        out = csv.writer(stream)
        out.writerow(COLUMNS)
        for i in range(n):
            sku = "starter_pack" if i % 10 == 0 else "gems_100"
            state = "refunded" if i % 20 == 7 else "granted"
            day = 1 + i % 28
            out.writerow(["stripe", f"cs_hist_{i:08d}", f"pi_hist_{i:08d}", f"player-{i % 100_000}", sku,
                          1 + i % 3, "4.99", "USD", f"2025-02-{day:02d}T12:00:00Z", state])


if __name__ == "__main__":
    write(sys.argv[1], int(sys.argv[2]))
