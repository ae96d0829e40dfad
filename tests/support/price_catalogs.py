"""Test catalogs with a [price_policy] table or other text changes; a Stripe-event delivery helper."""
from __future__ import annotations

from tests.support.catalogs import changed_text
from tests.support.orders_flow import drain
from tests.support.stripe_events import post


def catalog_with(catalog_path: str, target, *, policy: dict | None = None, replace: dict | None = None) -> str:
    """A copy of the test catalog: ``replace`` {old text: new text}, then ``[games.demo.price_policy]``
    holding ``policy`` appended (TOML allows a game's tables in any order)."""
    text = changed_text(catalog_path, replace=replace)
    if policy:
        text += "\n[games.demo.price_policy]\n" + "".join(f'{key} = "{value}"\n' for key, value in policy.items())
    target.write_text(text)
    return str(target)


def deliver(client, redis, ev) -> dict:
    response = post(client, ev)
    assert response.status_code == 200, response.get_json()
    drain(redis)
    return response.get_json()
