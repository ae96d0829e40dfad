"""The catalog's immutable types: ``Catalog`` (games by namespace), ``Game`` (its products and store tables),
``Product``, ``Component``, ``Grant``, and ``FrozenMap`` (a hashable read-only mapping). ``config.catalog``
builds them from the file."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from config.app_store_config import AppStoreConfig
from config.google_play_config import GooglePlayConfig
from config.prices import DEFAULT_POLICY, PricePolicy, price_in
from config.stripe_config import StripeConfig


class FrozenMap(Mapping):
    """A read-only, hashable dict (insertion order kept)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | None = None):
        self._data = dict(data or {})

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True)
class Grant:
    """One Kraty call per unit: credit ``amount`` of currency ``key`` or grant ``amount`` of item ``key``."""

    kind: str  # "currency" | "item"
    key: str
    amount: int  # per ONE unit of the component


@dataclass(frozen=True)
class Component:
    """A leaf of a product: the product itself, or one (flattened) bundle member."""

    sku: str
    item_id: str
    quantity: int  # units of this component per ONE unit of the top-level product
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class Product:
    sku: str
    item_id: str
    name: str
    type: str
    store_ids: FrozenMap  # store -> tuple[str, ...]
    grants: tuple[Grant, ...]  # the product's own grants, as written
    contains: tuple[tuple[str, int], ...]  # direct bundle members: (sku, quantity)
    supported: bool
    unsupported_reason: str | None
    components: tuple[Component, ...]  # unique by sku, see _flatten
    prices: FrozenMap = FrozenMap()  # "" (any store) or a store -> FrozenMap(currency -> Decimal): ONE unit
    trial_sku: str | None = None  # SUBSCRIPTION: the product a trial start grants (None: nothing)

    def price(self, store: str, currency: str):
        """What ONE unit costs at ``store`` in ``currency`` (a Decimal, major units), or None if undeclared."""
        return price_in(self.prices, store, currency)

    def grant_plan(self) -> list[tuple[Component, Grant]]:
        """Every (component, grant) pair, in file order: one ledger row per pair per order line."""
        return [(component, grant) for component in self.components for grant in component.grants]


@dataclass(frozen=True)
class Game:
    namespace: str
    kraty_base_url: str
    server_key: str = field(repr=False)
    allow_sandbox: bool
    negative_balance_policy: str  # "fail" | "allow_negative"
    products: FrozenMap = field(repr=False)  # sku -> Product, file order
    stripe: StripeConfig | None = None  # the [stripe] table; None: the game takes no Stripe events
    app_store: AppStoreConfig | None = None  # the [app_store] table; None: the game takes no App Store data
    google_play: GooglePlayConfig | None = None  # the [google_play] table; None: the game takes no Google Play data
    kraty_game_id: str = ""  # the game's id in Kraty's webhooks (default: the namespace)
    kraty_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)  # none: Kraty's webhooks are refused
    price_policy: PricePolicy = DEFAULT_POLICY  # the [price_policy] table (config/prices.py)
    _by_item_id: dict = field(init=False, repr=False, compare=False)
    _by_store_id: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_item_id", {p.item_id: p for p in self.products.values()})
        by_store = {(store, sid): p for p in self.products.values() for store, ids in p.store_ids.items() for sid in ids}
        object.__setattr__(self, "_by_store_id", by_store)

    def by_sku(self, sku: str) -> Product | None:
        return self.products.get(sku)

    def by_item_id(self, item_id: str) -> Product | None:
        return self._by_item_id.get(item_id)

    def by_store_id(self, store: str, store_product_id: str) -> Product | None:
        return self._by_store_id.get((store, store_product_id))


@dataclass(frozen=True)
class Catalog:
    games: FrozenMap  # namespace -> Game
    source: str  # the file it was loaded from

    def game(self, namespace: str) -> Game | None:
        return self.games.get(namespace)

    def stripe_games(self) -> list[Game]:
        """The games with a ``[stripe]`` table, in file order."""
        return [game for game in self.games.values() if game.stripe is not None]

    def app_store_games(self) -> list[Game]:
        """The games with an ``[app_store]`` table, in file order."""
        return [game for game in self.games.values() if game.app_store is not None]

    def by_bundle_id(self, bundle_id: str) -> Game | None:
        """The game whose ``[app_store]`` table has this bundle id (unique across games)."""
        for game in self.games.values():
            if game.app_store is not None and game.app_store.bundle_id == bundle_id:
                return game
        return None

    def google_play_games(self) -> list[Game]:
        """The games with a ``[google_play]`` table, in file order."""
        return [game for game in self.games.values() if game.google_play is not None]

    def by_package_name(self, package_name: str) -> Game | None:
        """The game whose ``[google_play]`` table has this package name (unique across games)."""
        for game in self.games.values():
            if game.google_play is not None and game.google_play.package_name == package_name:
                return game
        return None
