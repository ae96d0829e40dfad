"""Test catalogs with a [price_policy] table or other text changes; a Stripe-event delivery helper."""
from __future__ import annotations

from tests.helpers import drain
from tests.stripe_support import post


def catalog_with(catalog_path: str, target, *, policy: dict | None = None, replace: dict | None = None) -> str:
    """A copy of the test catalog: ``replace`` {old text: new text}, then ``[games.demo.price_policy]``
    holding ``policy`` appended (TOML allows a game's tables in any order)."""
    text = open(catalog_path).read()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    if policy:
        text += "\n[games.demo.price_policy]\n" + "".join(f'{key} = "{value}"\n' for key, value in policy.items())
    target.write_text(text)
    return str(target)


def deliver(client, redis, ev) -> dict:
    response = post(client, ev)
    assert response.status_code == 200, response.get_json()
    drain(redis)
    return response.get_json()
