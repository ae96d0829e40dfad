"""``flask import kraty-wallets|kraty-inventory``: balances and items into Kraty through ``/migrate`` — in batches,
a result per row, a refused row retried alone, keys from the studio's stable ids, no webhooks emitted."""
from __future__ import annotations

import json

from tests.support.import_files import write_csv, write_jsonl
from tests.support.stripe_events import balances

WALLET_COLUMNS = ["id", "player_id", "currency", "balance"]


def migrate(runner, kind, path, *args):
    return runner.invoke(args=["import", f"kraty-{kind}", str(path), "--namespace", "demo", *args])


def calls(emulator, path: str) -> int:
    return emulator.session.get(f"{emulator.url}/_emulator/stats").json()["byPath"].get(f"POST {path}", 0)


def test_wallets_with_bad_rows_a_refused_row_retried_alone_and_a_transient_failure(runner, emulator, tmp_path):
    emulator.session.delete(f"{emulator.url}/_emulator/stats")
    rows = [{"id": "w-1", "player_id": "mig-1", "currency": "gems", "balance": "250"},
            {"id": "w-2", "player_id": "mig-2", "currency": "rubies", "balance": "5"},     # Kraty: no such currency
            {"id": "w-3", "player_id": "mig-2", "currency": "gems", "balance": "-4"},      # refused before Kraty
            {"id": "w-4", "player_id": "mig-2", "currency": "gold", "balance": "7"}]
    path = write_csv(tmp_path / "wallets.csv", rows, WALLET_COLUMNS)
    emulator.faults({"path": "/migrate/wallets", "status": 503, "count": 1})
    result = migrate(runner, "wallets", path, "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert (body["rows"], body["applied"], body["skipped"], body["failed"]) == (4, 2, 0, 2)
    failures = {f["row"]: f for f in body["failures"]}
    assert failures[2]["code"] == "currency_not_found" and failures[2]["player"] == "mig-2"
    assert failures[3]["code"] == "invalid_row" and failures[3]["reason"].startswith("balance: a whole number")
    # one call failed with 503, then the batch, then the refused row alone
    assert calls(emulator, "/server/v1/migrate/wallets") == 3
    assert balances(emulator, "mig-1")[0] == {"gems": 250}
    assert balances(emulator, "mig-2")[0] == {"gold": 7}
    entries = emulator.ledger(player="mig-1") + emulator.ledger(player="mig-2")   # this test's players only
    assert sorted(e["idempotencyKey"] for e in entries) == ["migrate:wallets:w-1", "migrate:wallets:w-4"]
    assert {e["sourceRefId"] for e in entries} == {"w-1", "w-4"}
    assert emulator.session.get(f"{emulator.url}/_emulator/webhooks").json()["deliveries"] == []

    again = json.loads(migrate(runner, "wallets", path, "--json").stdout)   # the same file again: no change
    assert (again["applied"], again["skipped"], again["failed"]) == (0, 2, 2)
    assert len(emulator.ledger(player="mig-1") + emulator.ledger(player="mig-2")) == 2


def test_inventory_in_batches_with_progress_and_a_batch_refused_whole(runner, emulator, tmp_path):
    rows = [{"player_id": f"inv-{i}", "item": "sword", "quantity": i + 1} for i in range(5)]
    path = write_jsonl(tmp_path / "inventory.jsonl", rows)
    emulator.faults({"path": "/migrate/inventory", "status": 400, "code": "validation_failed", "count": 1})
    result = migrate(runner, "inventory", path, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "5 rows: 5 applied, 0 skipped (already present), 0 failed"
    assert result.stderr.splitlines()[0] == "migrating 5 rows to Kraty's inventory: 0/3"
    assert [balances(emulator, f"inv-{i}")[1] for i in range(5)] == [{"sword": i + 1} for i in range(5)]
    mine = [e for i in range(5) for e in emulator.ledger(player=f"inv-{i}")]   # this test's players only
    assert {e["idempotencyKey"] for e in mine} == {f"migrate:inventory:inv-{i}:sword" for i in range(5)}
