"""Bringing a studio's history in: past purchases into the ledger (as orders granted elsewhere), and wallets and
inventory into Kraty through its ``/migrate`` endpoints. See docs/migration.md.

(When ``middleware/orders/lines.py`` becomes the ``middleware/orders/`` package, ``purchases.py`` belongs there: it
writes orders.)
"""
