"""Stripe ingest: signed Stripe events (``POST /webhooks/stripe/demo``) under gunicorn vs a bare Flask
endpoint on the same path (reads the body, answers a small JSON 200) under the very same gunicorn settings.

Target: the real endpoint takes at least half the bare endpoint's requests/s. Every request to the app
is a distinct ``checkout.session.completed`` event (test mode, game ``demo``, about 2 KB like Stripe's)
with a valid ``Stripe-Signature``, so each one is verified, parsed, checked, inserted into
``inbound_events``, committed and gets its RQ job enqueued (no worker runs: the jobs accumulate, and
Redis is flushed between configurations). The signed requests are generated into a file right before
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
import shutil
import time
import uuid
from pathlib import Path

from . import common
from .common import ROOT, BenchError, kb_env, table, verdict
from .ingest import FULL as INGEST_FULL
from .ingest_common import (
    Ledger,
    best_summary,
    client_check,
    per_request,
    print_cpu_legend,
    print_ledger_checks,
    raise_if_incorrect,
    run_config,
)
from .loadgen import SignedPosts, have_wrk

TARGET = 0.5
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, exact=1200, exact_connections=8, bare_lines=4000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=1.0, rounds=1, warmup=0.5, connections=4, unloaded=1.0,
             duplicates=1.0, exact=48, exact_connections=4, bare_lines=400)
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


class EventFiles:
    """Files of distinct signed events (``SignedPosts``), generated on demand; every id unique in the run."""

    def __init__(self, workdir: Path):
        self.dir = workdir / f"stripe-events-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.template = json.dumps(_checkout_event(), separators=(",", ":"))
        self.secret = SECRET.encode()
        self.serial = 0

    def write(self, label: str, count: int) -> SignedPosts:
        """``count`` new events, signed now."""
        self.serial += 1
        tag, now = f"{uuid.uuid4().hex[:10]}{self.serial:02d}", int(time.time())
        body = self.template.replace('"created":0', f'"created":{now}').replace('"expires_at":0',
                                                                               f'"expires_at":{now + 86400}')
        path = self.dir / f"{self.serial:02d}-{label}.txt"
        with open(path, "w") as fh:
            for n in range(count):
                raw = (body.replace("@EVT@", f"evt_1{tag}{n:08d}").replace("@CS@", f"cs_test_a1{tag}{n:08d}")
                       .replace("@PI@", f"pi_3{tag}{n:08d}").replace("@PLAYER@", f"player-{n % 1000}")).encode()
                mac = hmac.new(self.secret, b"%d.%s" % (now, raw), hashlib.sha256).hexdigest()
                fh.write(f"t={now},v1={mac}\t{raw.decode()}\n")
        return SignedPosts(PATH, HEADER, str(path))

    def replay(self, sources: list[SignedPosts], recorded: set[str], limit: int) -> SignedPosts:
        """A file of lines from ``sources`` whose events are already recorded (their signatures still fresh)."""
        self.serial += 1
        path, kept = self.dir / f"{self.serial:02d}-duplicates.txt", 0
        with open(path, "w") as out:
            for source in sources:
                with open(source.file) as fh:
                    for line in fh:
                        event_id = line[line.index('"id":"') + 6:].split('"', 1)[0]
                        if f"{NAMESPACE}:{event_id}" in recorded and kept < limit:
                            out.write(line)
                            kept += 1
        if kept == 0:
            raise BenchError("no recorded event to replay as a duplicate")
        return SignedPosts(PATH, HEADER, str(path))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ runs
def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    ledger = Ledger(backends.database_url, backends.redis_url)
    env = kb_env(backends, str(ROOT / "config" / "examples" / "catalog.toml"))
    results = []
    started = time.perf_counter()
    try:
        for kind, workers, threads in opts["configs"]:
            results.append(run_config("stripe", kind, workers, threads, env, ledger, workdir, EventFiles(workdir),
                                      opts, warm_rate=2000))
        ledger.clear()
    finally:
        ledger.close()
    best = max(results, key=lambda r: r["app"]["rps"])
    client = results[0]["bare"]["client"]
    print(f"\nSTRIPE  signed Stripe events ingested vs bare Flask endpoint, same gunicorn settings  "
          f"[{backends.describe()}]")
    print(f"client: {client}, {opts['connections']} keep-alive connections; per configuration {opts['rounds']} "
          f"round(s) of bare {opts['seconds']:.0f} s then app {opts['seconds']:.0f} s, after {opts['warmup']:.1f} s "
          f"warm-up; every app request a new signed checkout.session.completed event (~2 KB, test mode); "
          f"p50 = mean over rounds, p99 = worst round; dup = {opts['duplicates']:.0f} s replaying recorded events")
    rows = []
    for r in results:
        b, a, d = r["bare"], r["app"], r["duplicates"]
        rows.append([r["config"], b["rps"], b["p50_ms"], b["p99_ms"], a["rps"], a["p50_ms"], a["p99_ms"], r["ratio"],
                     d["rps"], d["ratio"], a["errors"],
                     f"{b['unloaded']['p50_ms']:.2f}/{b['unloaded']['p99_ms']:.2f}",
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", per_request(b), per_request(a),
                     "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "app req/s", "p50 ms", "p99 ms", "ratio",
                 "dup req/s", "dup ratio", "errors", "bare 1-conn p50/p99", "app 1-conn p50/p99",
                 "bare: CPU ms/req", "app: CPU ms/req", "ledger check"], rows))
    print_cpu_legend()
    print_ledger_checks(results)
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}); duplicates {best['duplicates']['rps']:,.0f} req/s "
          f"(ratio {best['duplicates']['ratio']})")
    headroom = client_check(results, best)
    correct = all(r["correctness"]["ok"] for r in results)
    summary = {"benchmark": "stripe", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": TARGET,
               "best": best_summary(best, duplicate="duplicates"),
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET, "correct": correct,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('stripe', summary)}")
    raise_if_incorrect(results)
    return summary
