"""The chaos run's storefronts: clients that send each order the way a store does, again and again (the same
request) until they get a definite answer, and record what they were told.

- AccelByte-compatible storefront: ``PUT …/fulfillments/{txn}`` until 200 FULFILLED (a 409 "in progress",
  a 5xx with or without Retry-After, a timeout or a dropped connection: try again); a share of orders is then
  revoked, ``PUT …/revoke`` until 200 REVOKED.
- Stripe: a paid Checkout Session in the emulator's Stripe fake, then ``checkout.session.completed`` signed
  as Stripe signs it (``emulator/stripe_demo.py``), posted until 2xx (Stripe's own retry rule); a share is
  refunded with a full ``charge.refunded``, posted until 2xx. Some sessions are only ever sent with a wrong
  signature: they must never be granted.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

import requests

from emulator import stripe_demo

from bench.common import TOKEN

TIMEOUT = 10.0           # seconds per request: a store gives up on a slow answer and tries again
GIVE_UP = 900.0          # seconds: an order that never got a definite answer is reported, not retried forever
BODY = {"items": [{"itemSku": "gems_100", "quantity": 1}]}
STRIPE_PRICE = "price_gems_100"   # the example catalog's gems_100 on Stripe
STRIPE_SECRET = "whsec_demo_test_secret"


@dataclass
class Order:
    txn: str                  # the transaction id Kraty sees as sourceRefId (AccelByte txn or Checkout Session id)
    kind: str                 # "accelbyte" | "stripe" | "forged" (a Stripe event with a bad signature)
    player: str
    revoke: bool
    accepted_at: float | None = None     # when the bridge took it (the definite answer)
    revoked_at: float | None = None      # when the take-back was accepted
    tries: int = 0
    answers: dict = field(default_factory=dict)   # status (or error name) -> count

    def note(self, answer) -> None:
        self.tries += 1
        self.answers[answer] = self.answers.get(answer, 0) + 1


class Storefronts:
    """Sends orders from a shared list with ``threads`` client threads, at most ``rate`` new orders a second."""

    def __init__(self, bridge: str, emulator: str, orders: list[Order], threads: int, rate: float):
        self.bridge, self.emulator = bridge, emulator
        self.orders, self.threads, self.rate = orders, threads, rate
        self._next = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.status_500 = 0
        self.missing_retry_after = 0

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, name=f"storefront-{n}", daemon=True)
                   for n in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _take(self) -> Order | None:
        with self._lock:
            if self._next >= len(self.orders):
                return None
            order = self.orders[self._next]
            self._next += 1
            due = self._started + self._next / self.rate
        time.sleep(max(0.0, due - time.monotonic()))
        return order

    def _client(self) -> None:
        http = requests.Session()
        http.trust_env = False
        while (order := self._take()) is not None:
            send = {"accelbyte": self._accelbyte, "stripe": self._stripe, "forged": self._forged}[order.kind]
            try:
                send(http, order)
            except (requests.RequestException, stripe_demo.DemoError) as exc:  # the Stripe fake did not answer
                order.note(f"gave up: {exc.__class__.__name__}")

    # ------------------------------------------------------------------------------------------ one request
    def _until(self, order: Order, attempt, definite) -> bool:
        """Repeat ``attempt()`` until ``definite(response)``; back off 0.2 s doubling to 5 s (a store's retry)."""
        delay, deadline = 0.2, time.monotonic() + GIVE_UP
        while time.monotonic() < deadline:
            try:
                response = attempt()
            except requests.RequestException as exc:
                order.note(exc.__class__.__name__)
            else:
                order.note(response.status_code)
                if response.status_code >= 500:
                    with self._lock:
                        self.status_500 += response.status_code == 500
                        self.missing_retry_after += response.status_code == 503 and not response.headers.get(
                            "Retry-After")
                if definite(response):
                    return True
                if 400 <= response.status_code < 500 and response.status_code not in (408, 409, 429):
                    return False          # refused for good: reported by the checks
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)
        return False

    def _accelbyte(self, http: requests.Session, order: Order) -> None:
        url = f"{self.bridge}/platform/v2/admin/namespaces/demo/users/{order.player}/fulfillments/{order.txn}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

        def state_is(wanted):
            return lambda r: r.status_code == 200 and r.json().get("state") == wanted
        if self._until(order, lambda: http.put(url, json=BODY, headers=headers, timeout=TIMEOUT),
                       state_is("FULFILLED")):
            order.accepted_at = time.time()
            if order.revoke and self._until(order, lambda: http.put(url + "/revoke", headers=headers,
                                                                    timeout=TIMEOUT), state_is("REVOKED")):
                order.revoked_at = time.time()

    def _session(self, http: requests.Session, order: Order) -> dict:
        session = stripe_demo.create_session(http, self.emulator, order.player, STRIPE_PRICE, 1)
        order.txn = session["id"]
        return session

    def _post_event(self, http: requests.Session, event: dict, secret: str = STRIPE_SECRET):
        body = json.dumps(event).encode()       # the same event each time, signed afresh (as Stripe does)
        return http.post(f"{self.bridge}/webhooks/stripe/demo", data=body, timeout=TIMEOUT,
                         headers={"Content-Type": "application/json; charset=utf-8",
                                  "Stripe-Signature": stripe_demo.sign(body, secret)})

    def _stripe(self, http: requests.Session, order: Order) -> None:
        session = self._session(http, order)
        paid = stripe_demo.completed_event(session)
        if self._until(order, lambda: self._post_event(http, paid), lambda r: r.ok):
            order.accepted_at = time.time()
            if order.revoke:
                refund = stripe_demo.refunded_event(http, self.emulator, session)
                if self._until(order, lambda: self._post_event(http, refund), lambda r: r.ok):
                    order.revoked_at = time.time()

    def _forged(self, http: requests.Session, order: Order) -> None:
        """A paid session's event signed with the wrong secret: answered 4xx, never granted."""
        session = self._session(http, order)
        forged = stripe_demo.completed_event(session)
        self._until(order, lambda: self._post_event(http, forged, "whsec_not_the_games_secret"),
                    lambda r: 400 <= r.status_code < 500)


def plan(count: int, seed: int, revoke_share: float, stripe_share: float, forged_share: float) -> list[Order]:
    """The run's orders, the same for the same seed."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        roll = rng.random()
        kind = "forged" if roll < forged_share else "stripe" if roll < forged_share + stripe_share else "accelbyte"
        orders.append(Order(txn=f"chaos-{seed}-{n}", kind=kind, player=f"p{n % 200}",
                            revoke=kind != "forged" and rng.random() < revoke_share))
    return orders
