"""Emulator configuration: TOML loading and validation into one plain dict.

Shape (after :func:`normalize`)::

    {"studio_id": str, "webhook_url": str|None, "webhook_secret": str|None,
     "games": {game_id: {"server_keys": [...], "client_keys": [...],
                         "currencies": [...], "items": [...],
                         "webhook_url": str|None, "webhook_secret": str|None}}}
"""
from __future__ import annotations

import tomllib
from typing import Any


class ConfigError(ValueError):
    """Raised for a configuration that cannot be served."""


def load(path: str) -> dict:
    """Read a TOML file and return the normalized config dict."""
    with open(path, "rb") as fh:
        return normalize(tomllib.load(fh))


def _str_list(game: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"games.{game}.{name} must be a list of non-empty strings")
    return list(value)


def _secret(where: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith("whsec_"):
        raise ConfigError(f"{where}: webhook_secret must be a 'whsec_...' string")
    return value


def normalize_game(game: str, raw: dict) -> dict:
    """Validate one game's table and return it with every key present."""
    if not isinstance(raw, dict):
        raise ConfigError(f"games.{game} must be a table")
    url = raw.get("webhook_url") or None
    if url is not None and not isinstance(url, str):
        raise ConfigError(f"games.{game}.webhook_url must be a string")
    return {
        "server_keys": _str_list(game, "server_keys", raw.get("server_keys")),
        "client_keys": _str_list(game, "client_keys", raw.get("client_keys")),
        "currencies": _str_list(game, "currencies", raw.get("currencies")),
        "items": _str_list(game, "items", raw.get("items")),
        "webhook_url": url,
        "webhook_secret": _secret(f"games.{game}", raw.get("webhook_secret")),
    }


def normalize(raw: dict) -> dict:
    """Validate a raw config mapping (parsed TOML or a dict built in a test)."""
    raw = dict(raw or {})
    games_raw = raw.get("games") or {}
    if not isinstance(games_raw, dict):
        raise ConfigError("games must be a table")
    games = {name: normalize_game(name, g) for name, g in games_raw.items()}
    seen: dict[str, str] = {}
    for name, game in games.items():
        for key in game["server_keys"] + game["client_keys"]:
            if key in seen:
                raise ConfigError(f"API key used twice (games {seen[key]} and {name})")
            seen[key] = name
    return {
        "studio_id": str(raw.get("studio_id") or "studio_demo"),
        "webhook_url": raw.get("webhook_url") or None,
        "webhook_secret": _secret("top level", raw.get("webhook_secret")),
        "webhook_retries": int(raw.get("webhook_retries", 3)),
        "webhook_backoff": float(raw.get("webhook_backoff", 0.2)),
        "webhook_queue_size": int(raw.get("webhook_queue_size", 10000)),
        "games": games,
        "sinks": _sinks(raw.get("sinks")),
    }


def _sinks(raw) -> dict:
    """``[sinks] name = "whsec_..."``: the sink endpoints the emulator serves (emulator/sink.py)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("sinks must be a table of name = secret")
    return {str(name): _secret(f"sinks.{name}", secret) for name, secret in raw.items()}
