"""The ``segment`` sink: kraty-bridge's events as Segment HTTP Tracking API calls (``/v1/batch``, which
RudderStack, Jitsu and others accept too), and ``player.deleted`` as a Segment deletion regulation.

``messages(envelope)`` is the pure translation (the mapping is tabled in ``docs/sinks.md``); ``Batch`` keeps
a request under Segment's limits (32 KB a message, 500 KB a request); ``send_batch`` and
``send_regulation`` make the requests through the transport every sink shares (``http.post``).

Every message's ``messageId`` derives from the outbound event's id, so a retried or replayed batch is
deduplicated by Segment; ``timestamp`` is the event's time, not the time of sending.
"""
from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from config.sinks import DELETION, Sink

from middleware.sinks.http import USER_AGENT, SendResult, post

LIBRARY = {"name": "kraty-bridge", "version": USER_AGENT.rsplit("/", 1)[-1]}
MAX_MESSAGE_BYTES = 32_000      # Segment: 32 KB per message in a batch ...
MAX_BATCH_BYTES = 500_000       # ... and 500 KB per /v1/batch request (a 400 beyond either)
REGULATION = "SUPPRESS_WITH_DELETE"
REGULATIONS_CONTENT_TYPE = "application/vnd.segment.v1+json"   # Segment's Public API, v1
_BATCH_OVERHEAD = len('{"batch":[],"sentAt":"2026-11-21T10:00:00.000Z"}')

ORDER_COMPLETED = ("purchase.fulfilled", "purchase.regranted")
NAMES = {"purchase.fulfilled": "Order Completed", "purchase.regranted": "Order Completed",
         "purchase.revoked": "Order Refunded", "purchase.failed": "Order Fulfilment Failed"}


class Untranslatable(ValueError):
    """An event that can never become a valid Segment call (the message says why): dead-lettered unsent."""


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def title(event_type: str) -> str:
    """``wallet.changed`` -> ``Wallet Changed``: Segment's event names are Title Case words."""
    return " ".join(word[:1].upper() + word[1:] for word in re.split(r"[._\-\s:]+", event_type) if word)


def _amount(price) -> float | None:
    """A decimal string in major units ("4.99") as a JSON number; None when unknown or unreadable."""
    if price is None or isinstance(price, bool):
        return None
    try:
        value = Decimal(str(price))
    except InvalidOperation:
        return None
    return float(value) if value.is_finite() else None


def _who(env: dict) -> dict:
    """userId = the player; events without one are the namespace's (anonymousId)."""
    return {"userId": env["playerId"]} if env.get("playerId") else {"anonymousId": f"kraty-bridge:{env['namespace']}"}


def _base(env: dict, kind: str, suffix: str = "") -> dict:
    return {"type": kind, "messageId": env["id"] + suffix, "timestamp": env["timestamp"], **_who(env),
            "context": {"library": dict(LIBRARY)}}


def _bookkeeping(env: dict) -> dict:
    return {"namespace": env["namespace"], "environment": env["environment"],
            "player_sequence": env.get("playerSequence"), "event_id": env["id"]}


def _order(data: dict) -> dict:
    """Segment's e-commerce spec v2 properties of an order (amounts added by the caller)."""
    products = [{"product_id": line.get("sku"), "sku": line.get("sku"), "quantity": line.get("quantity"),
                 "item_id": line.get("itemId")} for line in data.get("products") or [] if isinstance(line, dict)]
    order = {"order_id": data.get("transactionId"), "affiliation": data.get("store"), "store": data.get("store"),
             "fulfilment_id": data.get("fulfilmentId"), "products": products}
    if data.get("currency"):
        order["currency"] = data["currency"]
    return order


def _purchase(env: dict) -> list[dict]:
    data = env.get("data") or {}
    kind, price = env["type"], _amount(data.get("price"))
    properties = _order(data)
    if kind in ORDER_COMPLETED:
        if price is not None:
            properties.update(total=price, revenue=price)
        if kind == "purchase.regranted":
            properties["regranted"] = True     # a reversed refund: the order counts again
    elif kind == "purchase.revoked":
        properties["partial"] = bool(data.get("partial"))
        if price is not None and not properties["partial"]:
            properties.update(total=price, revenue=-price)  # negative: revenue-summing tools net the refund out
    else:  # purchase.failed: paid, never granted
        properties["reason"] = data.get("reason")
        if price is not None:
            properties["total"] = price
    track = {**_base(env, "track"), "event": NAMES[kind], "properties": {**properties, **_bookkeeping(env)}}
    if kind in ORDER_COMPLETED and env.get("playerId"):
        identify = {**_base(env, "identify", ":identify"), "traits": {"namespace": env["namespace"]}}
        return [identify, track]
    return [track]


def _passed_on(env: dict) -> list[dict]:
    """Kraty's events (and any other type): a track call named after the type, the event's data as properties."""
    data = env.get("data") if isinstance(env.get("data"), dict) else {}
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    properties = {**inner, "kraty_event_id": data.get("id")} if data.get("source") == "kraty" else dict(data)
    properties.update(_bookkeeping(env))
    messages = []
    if env["type"] == "player.merged":
        guest, into = inner.get("fromExternalPlayerId"), inner.get("intoExternalPlayerId")
        if isinstance(guest, str) and guest and isinstance(into, str) and into:
            alias = {**_base(env, "alias", ":alias"), "previousId": guest, "userId": into}
            alias.pop("anonymousId", None)
            messages.append(alias)
            env = {**env, "playerId": into}
    track = {**_base(env, "track"), "event": title(env["type"]), "properties": properties}
    return [*messages, track]


def messages(env: dict) -> list[dict]:
    """The Segment calls for one event's envelope (``events.envelope``, parsed), in the order to send them.
    ``player.deleted`` is never a tracking call (it would re-create the user): see ``deletion_subject``.
    Raises ``Untranslatable`` for an event Segment would refuse (a message over 32 KB)."""
    if env["type"] == DELETION:
        raise Untranslatable(f"{DELETION} is forwarded as a regulation, not a tracking call")
    out = _purchase(env) if env["type"] in NAMES else _passed_on(env)
    for message in out:
        size = len(_dumps(message).encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise Untranslatable(f"a {message['type']} call of {size} bytes is over Segment's "
                                 f"{MAX_MESSAGE_BYTES} byte limit per message")
    return out


def deletion_subject(env: dict) -> str:
    """The Segment userId a ``player.deleted`` event erases: the player id the earlier calls carried."""
    data = env.get("data") if isinstance(env.get("data"), dict) else {}
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    for candidate in (env.get("playerId"), data.get("playerId"), inner.get("externalPlayerId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    raise Untranslatable(f"{DELETION} {env.get('id')} names no player to delete")


class Batch:
    """Messages for one /v1/batch request, under Segment's size limit; events join whole or not at all."""

    def __init__(self, max_bytes: int = MAX_BATCH_BYTES):
        self.max_bytes = max_bytes
        self.messages: list[dict] = []
        self.size = _BATCH_OVERHEAD

    def add(self, event_messages: list[dict]) -> bool:
        """Add one event's messages if the request stays under the limit; whether they were added."""
        size = sum(len(_dumps(m).encode("utf-8")) + 1 for m in event_messages)  # + 1: the comma
        if self.messages and self.size + size > self.max_bytes:
            return False
        self.messages.extend(event_messages)
        self.size += size
        return True


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def send_batch(sink: Sink, batch: list[dict]) -> SendResult:
    """One /v1/batch POST, the write key as basic auth's username (empty password). ``sentAt`` lets Segment
    correct for our clock; the messages' ids and timestamps are the same on every attempt."""
    body = _dumps({"batch": batch, "sentAt": _iso_now()}).encode("utf-8")
    auth = base64.b64encode(f"{sink.write_key}:".encode()).decode("ascii")
    return post(sink.url, body, {"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
                sink.timeout)


def send_regulation(sink: Sink, user_id: str) -> SendResult:
    """Ask Segment's Public API to suppress the user and delete what it holds on them (and forward the
    deletion to the destinations that support it)."""
    body = _dumps({"regulationType": REGULATION, "subjectType": "USER_ID", "subjectIds": [user_id]})
    return post(sink.regulations_url, body.encode("utf-8"),
                {"Content-Type": REGULATIONS_CONTENT_TYPE, "Authorization": f"Bearer {sink.regulations_token}"},
                sink.timeout)
