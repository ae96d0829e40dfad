"""In-memory Kraty state: games, players, wallets, inventories, ledger and idempotency records.

Everything is scoped per game and guarded by one lock. Mutating methods return
``(data, events)``; ``events`` is a list of ``(type, data)`` webhook events for the caller to
emit once the lock is released. Bodies reaching here are already validated (see routes.py).
"""
from __future__ import annotations

import threading

from emulator.config import ConfigError, normalize_game
from emulator.model import ApiError, Game, Player, new_id, now_iso
from emulator.players import PlayerOps

# op -> (book attribute, sign, body quantity field, target field, answer field, below-zero code)
OPS = {
    "credit": ("wallet", 1, "amount", "currencyKey", "balance", None),
    "debit": ("wallet", -1, "amount", "currencyKey", "balance", "insufficient_funds"),
    "grant": ("inventory", 1, "quantity", "itemKey", "quantity", None),
    "revoke": ("inventory", -1, "quantity", "itemKey", "quantity", "insufficient_quantity"),
}
EVENT_TYPE = {"wallet": "wallet.changed", "inventory": "inventory.changed"}


class Store(PlayerOps):
    def __init__(self, config: dict):
        self.lock = threading.Lock()
        self.games: dict[str, Game] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self.ledger: list[dict] = []
        for game_id, cfg in config["games"].items():
            self.games[game_id] = Game(game_id, cfg)
        self._index_keys()

    # ---- configuration -------------------------------------------------------------------
    def _index_keys(self) -> None:
        keys: dict[str, tuple[str, str]] = {}
        for game in self.games.values():
            for kind, field in (("server_integration", "server_keys"), ("client_sdk", "client_keys")):
                for key in game.cfg[field]:
                    if key in keys and keys[key][0] != game.id:
                        raise ConfigError(f"API key used twice (games {keys[key][0]} and {game.id})")
                    keys[key] = (game.id, kind)
        self.keys = keys

    def put_game(self, game_id: str, raw: dict) -> dict:
        cfg = normalize_game(game_id, raw)
        with self.lock:
            old = self.games.get(game_id)
            if old is None:
                self.games[game_id] = Game(game_id, cfg)
            else:
                old_cfg = old.cfg
                old.configure(cfg)
            try:
                self._index_keys()
            except ConfigError:
                if old is None:
                    del self.games[game_id]
                else:
                    old.configure(old_cfg)
                raise
        return cfg

    def reset(self) -> None:
        with self.lock:
            self.games = {gid: Game(gid, g.cfg) for gid, g in self.games.items()}
            self.ledger = []

    def authenticate(self, key: str) -> tuple[str, str] | None:
        return self.keys.get(key)

    # ---- helpers (lock held) ---------------------------------------------------------------
    def _player(self, game: Game, ext: str, create: bool) -> Player:
        player = game.players.get(ext)
        if player is None:
            if not create:
                raise ApiError(404, "player_not_found", f"player {ext!r} not found",
                               {"externalPlayerId": ext})
            player = game.players[ext] = Player(ext)
        return player

    def _entry(self, game: Game, player: Player, kind: str, **fields) -> dict:
        entry = {"id": new_id("le"), "game": game.id, "player": player.external_id,
                 "playerId": player.id, "kind": kind}
        entry.update(fields)
        entry["createdAt"] = now_iso()
        self.ledger.append(entry)
        player.ledger_count += 1
        return entry

    @staticmethod
    def check_key(game: Game, book: str, key: str) -> None:
        if book == "wallet" and key not in game.currencies:
            raise ApiError(404, "currency_not_found", f"currency {key!r} not found", {"currencyKey": key})
        if book == "inventory" and key not in game.items:
            raise ApiError(404, "item_not_found", f"item {key!r} not found", {"itemKey": key})

    # ---- credit / debit / grant / revoke ----------------------------------------------------
    @staticmethod
    def _replay(game, idem_key: tuple, fingerprint) -> dict | None:
        """The first answer for a seen key and the same body; 409 for a different body; None if new.
        Call with the lock held."""
        prev = game.idem.get(idem_key)
        if prev is None:
            return None
        if prev[0] != fingerprint:
            raise ApiError(409, "idempotency_key_conflict", "idempotency key reused with a different body",
                           {"idempotencyKey": idem_key[-1]})
        return {**prev[1], "replayed": True}

    def apply(self, game_id: str, op: str, ext: str, key: str, body: dict):
        book, sign, qty_field, target_field, answer_field, below_code = OPS[op]
        game = self.games[game_id]
        self.check_key(game, book, key)
        amount = body[qty_field]
        allow_negative = bool(body.get("allowNegative"))
        fingerprint = (amount, body["reason"], body.get("sourceRefId"), allow_negative)
        idem_key = (op, ext, key, body["idempotencyKey"])
        with self.lock:
            replay = self._replay(game, idem_key, fingerprint)
            if replay is not None:
                return replay, []
            player = self._player(game, ext, create=sign > 0)
            balances = getattr(player, book)
            before = balances.get(key, 0)
            after = before + sign * amount
            if after < 0 and not allow_negative:
                raise ApiError(409, below_code, f"{answer_field} would go below zero",
                               {answer_field: before, "requested": amount})
            balances[key] = after
            entry = self._entry(game, player, op, **{target_field: key, "delta": sign * amount,
                                answer_field: after, "reason": body["reason"],
                                "sourceRefId": body.get("sourceRefId"),
                                "idempotencyKey": body["idempotencyKey"]})
            data = {"ledgerEntryId": entry["id"], answer_field: after, "replayed": False}
            game.idem[idem_key] = (fingerprint, data)
        event = {"externalPlayerId": ext, target_field: key, "delta": sign * amount,
                 answer_field: after, "reason": body["reason"],
                 "sourceRefId": body.get("sourceRefId"), "ledgerEntryId": entry["id"]}
        return data, [(EVENT_TYPE[book], event)]

    # ---- make-good grants ---------------------------------------------------------------------
    def make_good(self, game_id: str, ext: str, contents: list[dict], body: dict):
        game = self.games[game_id]
        for comp in contents:
            book = "wallet" if "currencyKey" in comp else "inventory"
            self.check_key(game, book, comp.get("currencyKey") or comp.get("itemKey"))
        source = body.get("source") or "manual"
        fingerprint = (repr(contents), body["reason"], source)
        idem_key = ("makegood", ext, "", body["idempotencyKey"])
        with self.lock:
            replay = self._replay(game, idem_key, fingerprint)
            if replay is not None:
                return replay, []
            player = self._player(game, ext, create=True)
            grant = {"grantId": new_id("gr"), "externalPlayerId": ext, "contents": contents,
                     "reason": body["reason"], "source": source, "status": "pending",
                     "createdAt": now_iso(), "claimedAt": None}
            player.grants.append(grant)
            entry = self._entry(game, player, "makegood", grantId=grant["grantId"],
                                contents=contents, delta=None, reason=body["reason"],
                                sourceRefId=body.get("sourceRefId"),
                                idempotencyKey=body["idempotencyKey"])
            data = {"grantId": grant["grantId"], "ledgerEntryId": entry["id"], "status": "pending",
                    "contents": contents, "replayed": False}
            game.idem[idem_key] = (fingerprint, data)
        event = {k: grant[k] for k in ("grantId", "externalPlayerId", "contents", "reason", "source")}
        return data, [("grant.created", event)]

    def claim_grant(self, game_id: str, grant_id: str):
        """Emulator-only: the game client claims a pending make-good grant."""
        game = self._game(game_id)
        events = []
        with self.lock:
            for player in game.players.values():
                grant = next((g for g in player.grants if g["grantId"] == grant_id), None)
                if grant is not None:
                    break
            else:
                raise ApiError(404, "grant_not_found", f"grant {grant_id!r} not found")
            if grant["status"] == "claimed":
                return dict(grant), []
            for comp in grant["contents"]:
                book = "wallet" if "currencyKey" in comp else "inventory"
                target = "currencyKey" if book == "wallet" else "itemKey"
                answer = "balance" if book == "wallet" else "quantity"
                key, delta = comp[target], comp.get("amount", comp.get("quantity"))
                balances = getattr(player, book)
                balances[key] = balances.get(key, 0) + delta
                entry = self._entry(game, player, "claim", **{target: key, "delta": delta,
                                    answer: balances[key], "reason": grant["reason"],
                                    "sourceRefId": grant_id, "idempotencyKey": None})
                events.append((EVENT_TYPE[book], {"externalPlayerId": player.external_id,
                               target: key, "delta": delta, answer: balances[key],
                               "reason": grant["reason"], "sourceRefId": grant_id,
                               "ledgerEntryId": entry["id"]}))
            grant["status"], grant["claimedAt"] = "claimed", now_iso()
        events.insert(0, ("grant.claimed", {"grantId": grant_id, "claimedAt": grant["claimedAt"],
                                            "externalPlayerId": player.external_id}))
        return dict(grant), events

    def _game(self, game_id: str) -> Game:
        game = self.games.get(game_id)
        if game is None:
            raise ApiError(404, "game_not_found", f"game {game_id!r} not configured")
        return game
