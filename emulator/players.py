"""Player-level operations on the Store: profile, export, delete, merge, migrate, admin views.

Mixed into :class:`emulator.state.Store`; every method takes the store lock itself.
"""
from __future__ import annotations

import uuid

from emulator.model import ApiError, Player

MAX_MIGRATE_ROWS = 1000
LEDGER_FILTERS = ("game", "player", "playerId", "kind", "sourceRefId", "idempotencyKey",
                  "currencyKey", "itemKey")


def _nonzero(book: dict) -> dict:
    return {k: v for k, v in book.items() if v}


class PlayerOps:
    # ---- read --------------------------------------------------------------------------------
    def profile(self, game_id: str, ext: str, limit: int) -> dict:
        game = self.games[game_id]
        with self.lock:
            player = self._player(game, ext, create=False)
            return {
                "player": player.public(),
                "attempts": list(player.attempts[-limit:]),
                "grants": [dict(g) for g in player.grants[-limit:]],
                "lobbies": list(player.lobbies[-limit:]),
                "summary": {
                    "wallet": dict(player.wallet), "inventory": _nonzero(player.inventory),
                    "attemptsCount": len(player.attempts), "grantsCount": len(player.grants),
                    "pendingGrants": sum(1 for g in player.grants if g["status"] == "pending"),
                    "lobbiesCount": len(player.lobbies), "ledgerEntries": player.ledger_count,
                },
            }

    def export(self, game_id: str, ext: str) -> dict:
        game = self.games[game_id]
        with self.lock:
            player = self._player(game, ext, create=False)
            return {"player": player.public(), "attempts": list(player.attempts),
                    "grants": [dict(g) for g in player.grants],
                    "inventory": dict(player.inventory), "wallet": dict(player.wallet),
                    "lobbies": list(player.lobbies)}

    def admin_player(self, game_id: str, ext: str) -> dict:
        game = self._game(game_id)
        with self.lock:
            player = self._player(game, ext, create=False)
            return {**player.public(), "grants": [dict(g) for g in player.grants],
                    "balances": dict(player.wallet)}

    def query_ledger(self, filters: dict, limit: int | None = None) -> list[dict]:
        wanted = [(k, filters[k]) for k in LEDGER_FILTERS if filters.get(k) is not None]
        with self.lock:
            out = [dict(e) for e in self.ledger if all(e.get(k) == v for k, v in wanted)]
        return out[-limit:] if limit else out

    # ---- delete / merge ------------------------------------------------------------------------
    def delete(self, game_id: str, ext: str, reason: str | None):
        game = self.games[game_id]
        with self.lock:
            player = game.players.get(ext)
            if player is None or player.status != "active":
                status = "no_op_already_erased" if ext in game.erased else "no_op_never_existed"
                return {"status": status, "externalPlayerId": ext,
                        "playerId": game.erased.get(ext)}, []
            del game.players[ext]
            player.external_id = f"__deleted_{uuid.uuid4()}__"
            player.status = "deleted"
            game.players[player.external_id] = player
            game.erased[ext] = player.id
        data = {"status": "erased", "externalPlayerId": ext, "playerId": player.id,
                "reason": reason}
        return data, [("player.deleted", {"externalPlayerId": ext, "playerId": player.id})]

    def merge(self, game_id: str, guest: str, into: str):
        game = self.games[game_id]
        if guest == into:
            raise ApiError(400, "validation_failed", "cannot merge a player into itself",
                           {"into": "must differ from the guest id"})
        with self.lock:
            src = game.players.get(guest)
            if src is None or src.status != "active":
                done = game.merged.get(guest)
                if done == into:
                    return {"status": "no_op_already_merged", "from": guest, "into": into}, []
                if done is not None:
                    raise ApiError(409, "already_merged", f"{guest!r} was merged into {done!r}",
                                   {"into": done})
                raise ApiError(404, "player_not_found", f"player {guest!r} not found",
                               {"externalPlayerId": guest})
            dst = self._player(game, into, create=True)
            counts = {"attempts": len(src.attempts), "grants": len(src.grants),
                      "items": len(_nonzero(src.inventory)), "wallets": len(_nonzero(src.wallet)),
                      "lobbies": len(src.lobbies)}
            for book, target, answer in (("wallet", "currencyKey", "balance"),
                                         ("inventory", "itemKey", "quantity")):
                src_book, dst_book = getattr(src, book), getattr(dst, book)
                for key, value in _nonzero(src_book).items():
                    dst_book[key] = dst_book.get(key, 0) + value
                    for who, delta, after in ((src, -value, 0), (dst, value, dst_book[key])):
                        self._entry(game, who, "merge", **{target: key, "delta": delta,
                                    answer: after, "reason": "merge", "sourceRefId": guest,
                                    "idempotencyKey": None})
                src_book.clear()
            for grant in src.grants:
                grant["externalPlayerId"] = into
            dst.attempts += src.attempts
            dst.grants += src.grants
            dst.lobbies += src.lobbies
            src.attempts, src.grants, src.lobbies = [], [], []
            del game.players[guest]
            src.external_id = f"__merged_{uuid.uuid4()}__"
            src.status = "merged"
            game.players[src.external_id] = src
            game.merged[guest] = into
            player = dst.public()
        event = {"fromExternalPlayerId": guest, "intoExternalPlayerId": into, "counts": counts}
        return {"status": "merged", "from": guest, "into": into, "counts": counts,
                "player": player}, [("player.merged", event)]

    # ---- migrate -------------------------------------------------------------------------------
    def migrate(self, game_id: str, kind: str, rows: list) -> dict:
        if not isinstance(rows, list):
            raise ApiError(400, "validation_failed", "rows must be a list", {"rows": "list"})
        if len(rows) > MAX_MIGRATE_ROWS:
            raise ApiError(400, "validation_failed", f"at most {MAX_MIGRATE_ROWS} rows per call",
                           {"rows": f"{len(rows)} > {MAX_MIGRATE_ROWS}"})
        game = self.games[game_id]
        results, failures, applied, skipped = [], [], 0, 0
        with self.lock:
            for index, row in enumerate(rows):
                try:
                    status = self._migrate_row(game, kind, row)
                except ApiError as err:
                    failures.append({"index": index, "code": err.code, "message": err.message,
                                     "details": err.details})
                    results.append({"index": index, "status": "failed", "code": err.code})
                    continue
                applied += status == "applied"
                skipped += status == "skipped"
                results.append({"index": index, "status": status})
        return {"applied": applied, "skipped": skipped, "failures": failures, "rows": results}

    def _migrate_row(self, game, kind: str, row) -> str:
        if not isinstance(row, dict):
            raise ApiError(400, "validation_failed", "row must be an object")
        ext = row.get("externalPlayerId")
        if not isinstance(ext, str) or not ext:
            raise ApiError(400, "validation_failed", "externalPlayerId is required",
                           {"externalPlayerId": "required string"})
        if kind == "players":
            if ext in game.players:
                return "skipped"
            created = row.get("createdAt")
            game.players[ext] = Player(ext, created if isinstance(created, str) else None)
            return "applied"
        book, target, field = (("wallet", "currencyKey", "balance") if kind == "wallets"
                               else ("inventory", "itemKey", "quantity"))
        key, value = row.get(target), row.get(field)
        if not isinstance(key, str) or not key:
            raise ApiError(400, "validation_failed", f"{target} is required", {target: "required"})
        if type(value) is not int or value < 0:
            raise ApiError(400, "validation_failed", f"{field} must be a non-negative integer",
                           {field: "non-negative integer"})
        self.check_key(game, book, key)
        player = self._player(game, ext, create=True)
        balances = getattr(player, book)
        before = balances.get(key, 0)
        if before == value:
            return "skipped"
        balances[key] = value
        self._entry(game, player, "migrate", **{target: key, "delta": value - before,
                    field: value, "reason": "migrate", "sourceRefId": row.get("sourceRefId"),
                    "idempotencyKey": row.get("idempotencyKey") if isinstance(row.get("idempotencyKey"), str) else None})
        return "applied"

