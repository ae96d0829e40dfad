"""See a Stripe purchase go through a running kraty-bridge (``make run``), with no Stripe account.

    python -m emulator.stripe_demo [--bridge http://127.0.0.1:8000] [--emulator http://127.0.0.1:8100]
        [--player player-1] [--price price_gems_100] [--quantity 2] [--secret whsec_demo_test_secret]
    python -m emulator.stripe_demo --refund cs_test_...

A purchase: creates a Checkout Session (and its PaymentIntent) in the emulator's Stripe fake
(``POST {emulator}/stripe/_stripe/checkout_sessions``), then posts a test-mode
``checkout.session.completed`` event for it to ``{bridge}/webhooks/stripe/<namespace>``, signed as
Stripe signs (``Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">``). The bridge fetches the
session's line items from the same fake (``KB_STRIPE_API_BASE``) and grants them in the emulator.

``--refund <session id>``: reads that session from the fake, refunds its charge in full there and
posts the ``charge.refunded`` Stripe would send instead. Prints the bridge's answer, the session id and the curl line that
shows the player's wallet. Exit code 0 when the bridge answered 2xx.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

import requests

STRIPE_PREFIX = "/stripe"           # where `python -m emulator` mounts the fake
API_VERSION = "2025-01-27.acacia"
FAKE_API_KEY = "sk_test_stripe_demo"  # the fake takes any sk_test_ key
TIMEOUT = 10


class DemoError(Exception):
    """Something the user can fix: the message says what."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type_: str, obj: dict) -> dict:
    """A test-mode Stripe event envelope around ``obj``."""
    now = int(time.time())
    return {"id": f"evt_demo_{now}_{secrets.token_hex(6)}", "object": "event", "api_version": API_VERSION,
            "created": now, "livemode": False, "type": type_, "data": {"object": obj},
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}


def _answer(response: requests.Response, what: str) -> dict:
    if response.status_code != 200:
        raise DemoError(f"{what}: {response.status_code} {response.text.strip()[:500]}")
    return response.json()


def create_session(http: requests.Session, emulator: str, player: str, price: str, quantity: int) -> dict:
    """A paid, complete Checkout Session for ``player`` in the fake (it answers with all its line items)."""
    body = {"client_reference_id": player, "metadata": {"player_id": player},
            "line_items": [{"price": price, "quantity": quantity}]}
    response = http.post(f"{emulator}{STRIPE_PREFIX}/_stripe/checkout_sessions", json=body, timeout=TIMEOUT)
    return _answer(response, "creating the Checkout Session in the Stripe fake")


def fetch_session(http: requests.Session, emulator: str, session_id: str) -> dict:
    """The session as the fake's Stripe API serves it (the bridge reads it the same way)."""
    response = http.get(f"{emulator}{STRIPE_PREFIX}/v1/checkout/sessions/{session_id}", timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {FAKE_API_KEY}"})
    return _answer(response, f"reading {session_id} from the Stripe fake")


def completed_event(session: dict) -> dict:
    """``checkout.session.completed`` as Stripe sends it: the session without its line items."""
    return event("checkout.session.completed", {k: v for k, v in session.items() if k != "line_items"})


def refunded_event(http: requests.Session, emulator: str, session: dict) -> dict:
    """Refund the session's charge in full in the fake (as the Dashboard would), then the
    ``charge.refunded`` Stripe sends: the Charge, without its refunds (the bridge lists them)."""
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if not intent:
        raise DemoError(f"{session['id']} has no PaymentIntent, so there is no charge to refund")
    response = http.post(f"{emulator}{STRIPE_PREFIX}/_stripe/refunds", json={"payment_intent": intent},
                         timeout=TIMEOUT)
    refund = _answer(response, f"refunding {intent} in the Stripe fake")
    response = http.get(f"{emulator}{STRIPE_PREFIX}/_stripe/charges/{refund['charge']}", timeout=TIMEOUT)
    return event("charge.refunded", _answer(response, f"reading charge {refund['charge']} from the Stripe fake"))


def post_event(http: requests.Session, bridge: str, namespace: str, ev: dict, secret: str) -> requests.Response:
    body = json.dumps(ev).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(body, secret)}
    return http.post(f"{bridge}/webhooks/stripe/{namespace}", data=body, headers=headers, timeout=TIMEOUT)


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator.stripe_demo",
                                     description="Send a signed Stripe Checkout purchase (or its refund) to a "
                                                 "running kraty-bridge, backed by the emulator's Stripe fake.")
    parser.add_argument("--bridge", default="http://127.0.0.1:8000", help="kraty-bridge base URL")
    parser.add_argument("--emulator", default="http://127.0.0.1:8100",
                        help="emulator base URL (the Stripe fake is under /stripe)")
    parser.add_argument("--namespace", default="demo", help="game namespace (catalog) and Kraty game id")
    parser.add_argument("--player", default="player-1", help="Kraty player id (client_reference_id)")
    parser.add_argument("--price", default="price_gems_100", help="Stripe price id of the line item")
    parser.add_argument("--quantity", type=int, default=2, help="line item quantity")
    parser.add_argument("--secret", default="whsec_demo_test_secret", help="the game's webhook signing secret")
    parser.add_argument("--refund", metavar="SESSION_ID", help="refund this Checkout Session in full instead")
    args = parser.parse_args(argv)
    if args.quantity < 1:
        parser.error("--quantity must be at least 1")
    args.bridge, args.emulator = args.bridge.rstrip("/"), args.emulator.rstrip("/")
    return args


def _python() -> str:
    """This interpreter as the user would type it here (``.venv/bin/python`` under ``make run``)."""
    path = os.path.relpath(os.path.abspath(sys.executable))
    return sys.executable if path.startswith("..") else path


def run(args: argparse.Namespace, http: requests.Session) -> int:
    if args.refund:
        session = fetch_session(http, args.emulator, args.refund)
        ev = refunded_event(http, args.emulator, session)
        print(f"refunding {session['id']} in full ({session['amount_total']} {session.get('currency', 'usd')}, "
              f"PaymentIntent {ev['data']['object']['payment_intent']})")
    else:
        session = create_session(http, args.emulator, args.player, args.price, args.quantity)
        ev = completed_event(session)
        print(f"Checkout Session {session['id']} created in the Stripe fake: {args.quantity} x {args.price} "
              f"for {args.player}")
    player = session.get("client_reference_id") or args.player
    response = post_event(http, args.bridge, args.namespace, ev, args.secret)
    print(f"POST {args.bridge}/webhooks/stripe/{args.namespace} ({ev['type']}, {ev['id']}) -> "
          f"{response.status_code} {response.text.strip()}")
    print(f"session: {session['id']}")
    print("The worker grants (or takes back) the goods in a moment. See the player's wallet and inventory:")
    print(f"  curl {args.emulator}/_emulator/players/{args.namespace}/{player}")
    if not args.refund:
        print("Refund it:")
        print(f"  {_python()} -m emulator.stripe_demo --bridge {args.bridge} --emulator {args.emulator} "
              f"--refund {session['id']}")
    return 0 if response.ok else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy
        try:
            return run(args, http)
        except DemoError as exc:
            print(f"error: {exc}", file=sys.stderr)
        except requests.ConnectionError as exc:
            print(f"error: cannot connect ({exc.request.url if exc.request else exc}); is `make run` running, "
                  "and are --bridge and --emulator right?", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
