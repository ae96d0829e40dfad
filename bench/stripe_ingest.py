"""Stripe ingest: signed Stripe events (``POST /webhooks/stripe/demo``) under gunicorn vs a bare Flask
endpoint on the same path (reads the body, answers a small JSON 200) under the very same gunicorn settings.

Target: the real endpoint takes at least half the bare endpoint's requests/s. Every request to the app
is a distinct ``checkout.session.completed`` event (test mode, game ``demo``, about 2 KB like Stripe's)
with a valid ``Stripe-Signature``, so each one is verified, parsed, checked, inserted into
``inbound_events`` with its job's row in the outbox and committed; the outbox relay (``python -m
workers.relay``, its own process, its CPU counted) moves the jobs to RQ (no worker runs: the jobs
accumulate, and Redis is flushed between configurations). Beside the bare endpoint, the persist floor
(``bench/floor_app.py``: one committed INSERT of the raw body, none of our code) runs under the same
settings, and the report gives the app's rate against both. The signed requests are generated into a file right before
each load run (signatures carry a timestamp; the default 300 s tolerance is kept) and the load client
takes them in turn; the bare endpoint ignores what it reads, so its runs may repeat lines. A secondary
run replays events already recorded: the duplicate-delivery rate (verify, parse, a no-op insert).

Correctness, per configuration (``bench/ingest_common.py``, shared with the App Store and Google Play
benchmarks): no answer other than 2xx; no request to the app repeated an event; inbound_events rows lie
between the 2xx answers and the requests written (wrk stops its clock with up to one request per
connection in flight, which the server still commits), and one RQ job per row; the duplicate run adds no
row; a count-bounded leg (the Python client, which reads every answer) adds exactly one row per 2xx answer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from bench import common, ingest_common
from bench.common import ROOT, kb_env
from bench.ingest_common import RequestFiles, duplicates_leg, report, run_configs
from bench.loadgen import SignedPosts

TARGET = 0.5
FULL = ingest_common.FULL
QUICK = ingest_common.QUICK
NAMESPACE = "demo"
PATH = f"/webhooks/stripe/{NAMESPACE}"
SECRET = "whsec_demo_test_secret"   # config/examples/catalog.toml, game demo (allow_sandbox = true)
HEADER = "Stripe-Signature"


# ------------------------------------------------------------------------------------------------ events
def _checkout_event() -> dict:
    """A checkout.session.completed event shaped like Stripe's (API 2025-01), ids as placeholders."""
    session = {
        "id": "@CS@", "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None, "amount_subtotal": 999, "amount_total": 999,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": "https://game.example/shop/cancel",
        "client_reference_id": "@PLAYER@", "client_secret": None, "consent": None, "consent_collection": None,
        "created": 0, "currency": "usd", "currency_conversion": None, "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None, "customer_creation": "if_required",
        "customer_details": {"address": {"city": None, "country": "DE", "line1": None, "line2": None,
                                         "postal_code": None, "state": None},
                             "email": "player@example.com", "name": "Test Player", "phone": None,
                             "tax_exempt": "none", "tax_ids": []},
        "customer_email": None, "discounts": [], "expires_at": 0, "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {"account_tax_ids": None, "custom_fields": None,
                                                                "description": None, "footer": None,
                                                                "issuer": None, "metadata": {},
                                                                "rendering_options": None}},
        "livemode": False, "locale": None, "metadata": {"player_id": "@PLAYER@"}, "mode": "payment",
        "payment_intent": "@PI@", "payment_link": None, "payment_method_collection": "if_required",
        "payment_method_configuration_details": {"id": "pmc_1Q0benchbenchbenchbench", "parent": None},
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card", "link"], "payment_status": "paid",
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "saved_payment_method_options": None, "setup_intent": None, "shipping_address_collection": None,
        "shipping_cost": None, "shipping_details": None, "shipping_options": [], "status": "complete",
        "submit_type": None, "subscription": None, "success_url": "https://game.example/shop/success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": None}
    return {"id": "@EVT@", "object": "event", "api_version": "2025-01-27.acacia", "created": 0,
            "data": {"object": session}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": "checkout.session.completed"}


class EventFiles(RequestFiles):
    """Files of distinct signed events, generated on demand; every id unique in the run."""
    PATH, HEADER = PATH, HEADER

    def __init__(self, workdir: Path):
        super().__init__(workdir, "stripe-events")
        self.template = json.dumps(_checkout_event(), separators=(",", ":"))
        self.secret = SECRET.encode()

    def write(self, label: str, count: int) -> SignedPosts:
        """``count`` new events, signed now."""
        tag, now = f"{uuid.uuid4().hex[:10]}{self.serial + 1:02d}", int(time.time())
        body = self.template.replace('"created":0', f'"created":{now}').replace('"expires_at":0',
                                                                               f'"expires_at":{now + 86400}')

        def lines():
            for n in range(count):
                event_id = f"evt_1{tag}{n:08d}"
                raw = (body.replace("@EVT@", event_id).replace("@CS@", f"cs_test_a1{tag}{n:08d}")
                       .replace("@PI@", f"pi_3{tag}{n:08d}").replace("@PLAYER@", f"player-{n % 1000}")).encode()
                mac = hmac.new(self.secret, b"%d.%s" % (now, raw), hashlib.sha256).hexdigest()
                yield f"{NAMESPACE}:{event_id}", f"t={now},v1={mac}\t{raw.decode()}"
        return self._write(label, lines())


# ------------------------------------------------------------------------------------------------ runs
def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    env = kb_env(backends, str(ROOT / "config" / "examples" / "catalog.toml"))
    started = time.perf_counter()
    results = run_configs("stripe", backends, env, workdir, opts, lambda: EventFiles(workdir), warm_rate=2000)
    return report("stripe", "STRIPE  signed Stripe events ingested", backends, opts, quick, results, started, TARGET,
                  "every app request a new signed checkout.session.completed event (~2 KB, test mode)",
                  (duplicates_leg(opts, "events"),))
