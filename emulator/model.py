"""Plain data types shared by the emulator: the API error, players and games."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone


class ApiError(Exception):
    """A Kraty error answer: ``{"error": {"code", "message", "details"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Player:
    __slots__ = ("id", "external_id", "created_at", "status", "wallet", "inventory",
                 "attempts", "grants", "lobbies", "ledger_count")

    def __init__(self, external_id: str, created_at: str | None = None):
        self.id = new_id("pl")
        self.external_id = external_id
        self.created_at = created_at or now_iso()
        self.status = "active"
        self.wallet: dict[str, int] = {}
        self.inventory: dict[str, int] = {}
        self.attempts: list = []
        self.grants: list = []
        self.lobbies: list = []
        self.ledger_count = 0

    def public(self) -> dict:
        return {"id": self.id, "externalPlayerId": self.external_id, "createdAt": self.created_at,
                "status": self.status, "wallet": dict(self.wallet), "inventory": dict(self.inventory)}


class Game:
    def __init__(self, game_id: str, cfg: dict):
        self.id = game_id
        self.configure(cfg)
        self.players: dict[str, Player] = {}   # current external id -> row (incl. anonymised rows)
        self.erased: dict[str, str] = {}        # original external id -> player row id
        self.merged: dict[str, str] = {}        # guest external id -> into external id
        self.idem: dict[tuple, tuple] = {}      # (op, player, target, key) -> (fingerprint, data)

    def configure(self, cfg: dict) -> None:
        self.cfg = cfg
        self.currencies = frozenset(cfg["currencies"])
        self.items = frozenset(cfg["items"])
