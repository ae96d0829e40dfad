"""Kraty's webhooks as the tests send them: Standard Webhooks signatures made by the tests, an app whose demo
game takes them (``kraty_app``), and the count of what the bridge recorded."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from middleware.ledger.models import InboundEvent

from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.support.catalogs import with_kraty_secrets

SECRET = "whsec_" + "a2tyYXR5LWJyaWRnZS10ZXN0LXNlY3JldC0xMjM0NTY="
OLD_SECRET = "whsec_" + "b2xkLWtyYXR5LWJyaWRnZS1zZWNyZXQtOTg3NjU0MzI="


@pytest.fixture
def kraty_app(make_app, catalog_path, shared_files):
    return make_app(catalog_path=with_kraty_secrets(catalog_path, shared_files / "catalog-kraty.toml", SECRET,
                                                    OLD_SECRET))


def event(type_="wallet.changed", data=None, game="demo") -> dict:
    return {"id": f"evt_{uuid.uuid4().hex}", "type": type_, "createdAt": "2026-11-21T10:00:00.123Z",
            "studioId": "studio_demo", "gameId": game, "data": data or {"externalPlayerId": "player-1"}}


def send(client, body: dict | bytes, secret=SECRET, msg_id=None, when=None, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, raw.decode())
    sent = {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature,
            "Content-Type": "application/json"}
    sent.update(headers or {})
    return client.post("/webhooks/kraty", data=raw, headers=sent)


def recorded(services) -> int:
    with services.session() as session:
        return session.scalar(select(func.count()).select_from(InboundEvent).where(InboundEvent.source == "kraty"))
