"""The games' store tables in the catalog (``[games.<ns>.app_store]``, ``[games.<ns>.google_play]``):
read apart from the strict game schema, because they need the catalog file's folder (certificate and
key files) and checks across games (a notification's bundle id or package name picks the game)."""
from __future__ import annotations

from typing import Any

from config.app_store_config import AppStoreConfig, load_app_store
from config.google_play_config import GooglePlayConfig, load_google_play
from config.toml_schema import join_path


def split_tables(raw: Any, names: tuple[str, ...]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The document without the games' tables ``names`` (copied, not changed), and those tables by
    name, then namespace."""
    found: dict[str, dict[str, Any]] = {name: {} for name in names}
    games = raw.get("games") if isinstance(raw, dict) else None
    if not isinstance(games, dict):
        return raw, found
    for name in names:
        found[name] = {ns: game[name] for ns, game in games.items() if isinstance(game, dict) and name in game}
    if not any(found.values()):
        return raw, found
    rest = {ns: ({k: v for k, v in game.items() if k not in names} if isinstance(game, dict) else game)
            for ns, game in games.items()}
    return {**raw, "games": rest}, found


def _unique_per_game(tables: dict[str, Any], table: str, key: str, what: str, problems: list) -> None:
    """Each game's ``key`` (bundle id, package name) must be its own: ``what`` picks the game by it."""
    owners: dict[str, str] = {}
    for namespace, values in tables.items():
        value = values.get(key) if isinstance(values, dict) else None
        if not isinstance(value, str):
            continue
        if value in owners:
            problems.append((join_path("games", namespace, table, key),
                             f"{value!r} is already the {key} of game {owners[value]} "
                             f"({what} picks the game, so each game needs its own)"))
        else:
            owners[value] = namespace


def load_app_store_tables(tables: dict[str, Any], base_dir: str, problems: list) -> dict[str, AppStoreConfig]:
    """Each game's ``[app_store]`` table -> ``AppStoreConfig``; bundle ids must be unique across games."""
    _unique_per_game(tables, "app_store", "bundle_id", "a notification's bundleId", problems)
    configs: dict[str, AppStoreConfig] = {}
    for namespace, table in tables.items():
        config, found = load_app_store(table, base_dir, "games", namespace, "app_store")
        problems += found
        if config is not None:
            configs[namespace] = config
    return configs


def load_google_play_tables(tables: dict[str, Any], base_dir: str, raw: Any,
                            problems: list) -> dict[str, GooglePlayConfig]:
    """Each game's ``[google_play]`` table -> ``GooglePlayConfig``; package names must be unique across
    games, and ``non_consumable`` must name the game's products (read from the raw document)."""
    _unique_per_game(tables, "google_play", "package_name", "a notification's packageName", problems)
    configs: dict[str, GooglePlayConfig] = {}
    for namespace, table in tables.items():
        products = raw["games"][namespace].get("products")
        config, found = load_google_play(table, base_dir, set(products) if isinstance(products, dict) else None,
                                         "games", namespace, "google_play")
        problems += found
        if config is not None:
            configs[namespace] = config
    return configs
