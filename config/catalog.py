"""The catalog: what Kraty grants for every sellable SKU of every game (namespace).

``load_catalog(path)`` reads a TOML file (see ``config/examples/catalog.toml``), validates it with the
marshmallow schemas of ``config.catalog_schema`` plus the cross-product checks below, and returns an
immutable, hashable ``Catalog`` whose lookups (by SKU, AccelByte item id, store product id) are
dictionaries built once at load. Every problem found is reported in one ``CatalogError``.
A game's optional ``[stripe]`` table becomes ``Game.stripe`` (a ``config.stripe_config.StripeConfig``),
its optional ``[app_store]`` table ``Game.app_store`` (a ``config.app_store_config.AppStoreConfig``) and its
optional ``[google_play]`` table ``Game.google_play`` (a ``config.google_play_config.GooglePlayConfig``). Those
two are checked here rather than by ``GameSchema`` because they read files relative to the catalog file,
their bundle id / package name must be unique across games, and ``google_play.non_consumable`` names the
game's products.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from marshmallow import ValidationError

from config.app_store_config import AppStoreConfig
from config.catalog_schema import (
    INT32_MAX,
    SUPPORTED_TYPES,
    CatalogSchema,
    ConfigFileError,
    flatten_errors,
    join_path,
    read_toml,
)
from config.google_play_config import GooglePlayConfig
from config.prices import DEFAULT_POLICY
from config.store_tables import load_app_store_tables, load_google_play_tables, split_tables
from config.stripe_config import StripeConfig

from config.catalog_types import Catalog, Component, FrozenMap, Game, Grant, Product

__all__ = [
    "AppStoreConfig", "Catalog", "CatalogError", "Component", "FrozenMap", "Game", "GooglePlayConfig", "Grant",
    "Product", "StripeConfig", "load_catalog",
]


class CatalogError(ConfigFileError):
    """The catalog file is unreadable or invalid; one ``file: key.path: problem`` line per problem."""


def load_catalog(path: str | os.PathLike) -> Catalog:
    """Read and validate a catalog TOML file; raise ``CatalogError`` listing every problem."""
    source = os.fspath(path)
    raw = read_toml(source, CatalogError)
    raw, tables = split_tables(raw, ("app_store", "google_play"))
    problems: list[tuple[str, str]] = []
    try:
        data = CatalogSchema().load(raw)
    except ValidationError as exc:
        problems += flatten_errors(exc.messages)
        data = None
    problems += _check_references(raw)
    base_dir = os.path.dirname(os.path.abspath(source))
    app_store = load_app_store_tables(tables["app_store"], base_dir, problems)
    google_play = load_google_play_tables(tables["google_play"], base_dir, raw, problems)
    if problems or data is None:
        raise CatalogError(source, problems)
    games = {}
    for namespace, game in data["games"].items():
        games[namespace] = _build_game(namespace, game, problems, app_store.get(namespace), google_play.get(namespace))
    if problems:
        raise CatalogError(source, problems)
    return Catalog(games=FrozenMap(games), source=source)


# ---------------------------------------------------------------- cross-product checks (on the raw TOML)
def _check_references(raw: Any) -> list[tuple[str, str]]:
    """Per game: unique item ids and store ids, known bundle members, no bundle cycles.

    Runs on the raw document, skipping whatever is malformed (the schema reports that), so these
    problems are reported together with the schema's.
    """
    problems: list[tuple[str, str]] = []
    games = raw.get("games") if isinstance(raw, dict) else None
    for namespace, game in (games.items() if isinstance(games, dict) else ()):
        products = game.get("products") if isinstance(game, dict) else None
        if not isinstance(products, dict):
            continue
        base = ("games", namespace, "products")
        item_ids: dict[str, str] = {}
        store_ids: dict[tuple[str, str], str] = {}
        edges: dict[str, list[tuple[int, str]]] = {}
        for sku, product in products.items():
            if not isinstance(product, dict):
                continue
            item_id = product.get("item_id", sku)
            if isinstance(item_id, str):
                if item_id in item_ids:
                    where = join_path(*base, sku, "item_id") if "item_id" in product else join_path(*base, sku)
                    label = "" if "item_id" in product else " (the default item_id: the SKU)"
                    problems.append((where, f"{item_id!r}{label} is already the item_id of product {item_ids[item_id]}"))
                item_ids.setdefault(item_id, sku)
            stores = product.get("store_ids")
            for store, ids in (stores.items() if isinstance(stores, dict) else ()):
                for sid in dict.fromkeys([ids] if isinstance(ids, str) else ids if isinstance(ids, list) else []):
                    if not isinstance(sid, str):
                        continue
                    other = store_ids.setdefault((store, sid), sku)
                    if other != sku:
                        problems.append((join_path(*base, sku, "store_ids", store),
                                         f"{sid!r} is already the {store} id of product {other}"))
            contains = product.get("contains")
            for index, member in enumerate(contains if isinstance(contains, list) else ()):
                if isinstance(member, dict) and isinstance(member.get("sku"), str):
                    if member["sku"] in products:
                        edges.setdefault(sku, []).append((index, member["sku"]))
                    else:
                        problems.append((join_path(*base, sku, "contains", index, "sku"),
                                         f"unknown product {member['sku']!r} (not in games.{namespace}.products)"))
            trial = product.get("trial_sku")
            if isinstance(trial, str) and trial not in products:
                problems.append((join_path(*base, sku, "trial_sku"),
                                 f"unknown product {trial!r} (not in games.{namespace}.products)"))
        problems += _find_cycles(edges, base)
    return problems


def _find_cycles(edges: dict[str, list[tuple[int, str]]], base: tuple) -> list[tuple[str, str]]:
    problems, state = [], {}  # state: 1 = on the current path, 2 = done

    def visit(sku: str, path: list[str]) -> None:
        state[sku] = 1
        path.append(sku)
        for index, member in edges.get(sku, ()):
            if state.get(member) == 1:
                cycle = path[path.index(member):] + [member]
                problems.append((join_path(*base, sku, "contains", index, "sku"),
                                 f"bundle cycle: {' -> '.join(cycle)}"))
            elif member not in state:
                visit(member, path)
        path.pop()
        state[sku] = 2

    for sku in edges:
        if sku not in state:
            visit(sku, [])
    return problems


# ---------------------------------------------------------------- building the immutable objects
def _build_game(namespace: str, data: dict, problems: list[tuple[str, str]],
                app_store: AppStoreConfig | None = None, google_play: GooglePlayConfig | None = None) -> Game:
    raw_products = data["products"]
    built: dict[str, Product] = {}

    def build(sku: str) -> Product:
        if sku in built:
            return built[sku]
        spec = raw_products[sku]
        grants = tuple(Grant(g["kind"], g["key"], g["amount"]) for g in spec.get("grants", ()))
        contains = tuple((c["sku"], c["quantity"]) for c in spec.get("contains", ()))
        members = [(build(member), quantity) for member, quantity in contains]
        item_id = spec.get("item_id", sku)
        supported, reason = True, None
        if spec["type"] not in SUPPORTED_TYPES:
            supported, reason = False, f"item type {spec['type']} cannot be fulfilled"
        for member, _ in members:
            if supported and not member.supported:
                supported = False
                reason = member.unsupported_reason if member.type == "BUNDLE" else (
                    f"bundle contains {member.sku} (type {member.type}) which cannot be fulfilled")
        product = Product(
            sku=sku, item_id=item_id, name=spec.get("name", sku), type=spec["type"],
            store_ids=FrozenMap(spec.get("store_ids", {})), grants=grants, contains=contains,
            supported=supported, unsupported_reason=reason,
            components=_flatten(Component(sku, item_id, 1, grants), spec["type"], members),
            prices=FrozenMap({key: FrozenMap(table) for key, table in
                              ({"": spec.get("prices", {})} | spec.get("store_prices", {})).items() if table}),
            trial_sku=spec.get("trial_sku"),
        )
        for component, grant in product.grant_plan():
            if grant.amount * component.quantity > INT32_MAX:
                problems.append((join_path("games", namespace, "products", sku),
                                 (f"one unit grants {grant.amount * component.quantity} {grant.kind} {grant.key} "
                                  f"(via {component.sku}), more than {INT32_MAX}")))
        built[sku] = product
        return product

    products = {sku: build(sku) for sku in raw_products}
    return Game(
        namespace=namespace, kraty_base_url=data["kraty_base_url"], server_key=data["server_key"],
        allow_sandbox=data["allow_sandbox"], negative_balance_policy=data["negative_balance_policy"],
        products=FrozenMap(products), stripe=data.get("stripe"), app_store=app_store, google_play=google_play,
        kraty_game_id=data.get("kraty_game_id") or namespace, kraty_webhook_secrets=data.get("kraty_webhook_secrets", ()),
        price_policy=data.get("price_policy", DEFAULT_POLICY),
    )


def _flatten(own: Component, kind: str, members: list[tuple[Product, int]]) -> tuple[Component, ...]:
    """A non-bundle is its own single component. A bundle is its own grants (if any) followed by its
    members' components depth-first in file order, quantities multiplied through the nesting; a
    component reached twice (same SKU) is listed once, at its first position, with quantities summed.
    """
    if kind != "BUNDLE":
        return (own,)
    merged: dict[str, Component] = {own.sku: own} if own.grants else {}
    for member, quantity in members:
        for component in member.components:
            scaled = component.quantity * quantity
            if component.sku in merged:
                scaled += merged[component.sku].quantity
            merged[component.sku] = replace(component, quantity=scaled)
    return tuple(merged.values())
