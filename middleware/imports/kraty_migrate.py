"""Wallet balances and inventory quantities into Kraty through its ``/migrate`` endpoints (protocols/kraty.md):
≤ 1,000 rows a call, a result per row, no webhooks emitted.

A file row names the player, the currency (item) and the balance (quantity) to set, and optionally ``id``, the
studio's stable id of the row; the row's ``sourceRefId`` is that id (else ``<player>:<key>``) and its
``idempotencyKey`` is ``migrate:<kind>:<that>``, so running the same file again changes nothing. A call that
fails transiently (timeout, 429, 5xx) is repeated with backoff; a row Kraty refuses is tried again alone once,
and reported with Kraty's reason if it fails again; a call Kraty refuses as a whole is split into single rows.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from mappers.accelbyte import is_clean_id
from middleware.ledger.storable import MESSAGE, unstorable

from middleware.kraty.client import KratyClient, KratyError
from middleware.imports.files import BadLine
from middleware.imports.rows import RowError

# kind -> (Kraty's key field, Kraty's amount field, the file's accepted spellings of the key column)
KINDS = {"wallets": ("currencyKey", "balance", ("currency", "currency_key", "currencyKey")),
         "inventory": ("itemKey", "quantity", ("item", "item_key", "itemKey"))}
PLAYER_COLUMNS = ("player_id", "externalPlayerId")
ATTEMPTS = 5
MAX_AMOUNT = 2**53


@dataclass
class MigrateResult:
    row: int
    status: str                 # applied | skipped | failed
    player: str | None = None
    key: str | None = None
    code: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _first(raw: dict, names: tuple[str, ...]):
    return next((raw[name] for name in names if raw.get(name) not in (None, "")), None)


def kraty_row(kind: str, raw) -> dict:
    """A file row as Kraty's migrate row, or RowError."""
    if isinstance(raw, BadLine):
        raise RowError(raw.problem)
    if not isinstance(raw, dict):
        raise RowError("a row must be an object")
    if unstorable(raw):
        raise RowError(f"text Kraty cannot take: {MESSAGE}")
    target, amount_field, key_columns = KINDS[kind]
    player, key = _first(raw, PLAYER_COLUMNS), _first(raw, key_columns)
    if not isinstance(player, str) or not is_clean_id(player.strip()):
        raise RowError("player_id: 1-128 printable characters without spaces")
    if not isinstance(key, str) or not 0 < len(key.strip()) <= 64:
        raise RowError(f"{key_columns[0]}: 1-64 characters")
    value = raw.get(amount_field)
    try:
        amount = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        amount = None
    if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
        raise RowError(f"{amount_field}: a whole number from 0 to {MAX_AMOUNT}")
    player, key = player.strip(), key.strip()
    stable = str(raw.get("id") or f"{player}:{key}").strip()
    return {"externalPlayerId": player, target: key, amount_field: amount, "sourceRefId": stable,
            "idempotencyKey": f"migrate:{kind}:{stable}"[:255]}


def _call(client: KratyClient, kind: str, rows: list[dict], sleep: Callable[[float], None]) -> dict:
    """One migrate call, repeated with backoff while Kraty fails transiently."""
    for attempt in range(ATTEMPTS):
        try:
            return client.migrate(kind, rows)
        except KratyError as exc:
            if not exc.transient or attempt == ATTEMPTS - 1:
                raise
            sleep(max(exc.retry_after or 0.0, random.uniform(0, min(30.0, 0.5 * 2 ** attempt))))
    raise AssertionError("unreachable")


def _alone(client: KratyClient, kind: str, number: int, row: dict, sleep) -> MigrateResult:
    player, key = row["externalPlayerId"], row[KINDS[kind][0]]
    try:
        answer = _call(client, kind, [row], sleep)
    except KratyError as exc:
        return MigrateResult(number, "failed", player, key, exc.code, exc.message)
    failures = answer.get("failures") or []
    if failures:
        return MigrateResult(number, "failed", player, key, failures[0].get("code"), failures[0].get("message"))
    return MigrateResult(number, "applied" if answer.get("applied") else "skipped", player, key)


def migrate_batch(client: KratyClient, kind: str, batch: list[tuple[int, object]],
                  sleep: Callable[[float], None] = time.sleep) -> list[MigrateResult]:
    """Send one batch (≤ 1,000 file rows); a result per row, in row order."""
    results: dict[int, MigrateResult] = {}
    valid: list[tuple[int, dict]] = []
    for number, raw in batch:
        try:
            valid.append((number, kraty_row(kind, raw)))
        except RowError as exc:
            results[number] = MigrateResult(number, "failed", code="invalid_row", reason=str(exc))
    if valid:
        try:
            answer = _call(client, kind, [row for _, row in valid], sleep)
        except KratyError as exc:
            if exc.transient:
                answer = None
                results.update({n: MigrateResult(n, "failed", r["externalPlayerId"], r[KINDS[kind][0]], exc.code,
                                                 f"Kraty kept failing: {exc.message}") for n, r in valid})
            else:  # refused as a whole: each row on its own
                answer = {"failures": [{"index": i} for i in range(len(valid))]}
        if answer is not None:
            results.update(_per_row(client, kind, valid, answer, sleep))
    return [results[number] for number in sorted(results)]


def _per_row(client, kind: str, valid: list[tuple[int, dict]], answer: dict, sleep) -> dict[int, MigrateResult]:
    out = {}
    failed = {f.get("index") for f in answer.get("failures") or []}
    statuses = {r.get("index"): r.get("status") for r in answer.get("rows") or []}
    for index, (number, row) in enumerate(valid):
        if index in failed:
            out[number] = _alone(client, kind, number, row, sleep)
        else:
            out[number] = MigrateResult(number, statuses.get(index) or "applied", row["externalPlayerId"],
                                        row[KINDS[kind][0]])
    return out
