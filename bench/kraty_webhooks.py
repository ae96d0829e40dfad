"""Kraty webhooks ingest: Kraty's own webhooks signed per Standard Webhooks (``POST /webhooks/kraty``) under
gunicorn vs a bare Flask endpoint on the same path (reads the body, answers a small JSON 200) under the
very same gunicorn settings.

Target: the real endpoint takes at least half the bare endpoint's requests/s. Every request to the app
is a distinct Kraty event (``wallet.changed`` or ``inventory.changed`` of game ``demo``, about 0.4 KB, shaped
like ``../shared/protocols/kraty.md``) with a fresh ``webhook-id`` and valid ``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature`` headers (v1, HMAC-SHA256 of ``id.timestamp.body`` with the
game's secret). The catalog is the example one with two ``kraty_webhook_secrets`` for game ``demo`` (a
rotation: the current one signs, the old one is still live). So each request verifies the signature,
parses the event, picks the game, inserts an ``inbound_events`` row, commits and gets its RQ job
(``workers.events.kraty``) enqueued; no worker runs: the jobs accumulate, and Redis is flushed between
configurations. The signed requests are generated into a file right before each load run (signatures
carry a timestamp; the library's 5-minute tolerance applies) and the load client takes them in turn; the
bare endpoint ignores what it reads, so its runs may repeat lines. A secondary run replays webhooks already
recorded (Kraty's at-least-once redelivery): the duplicate rate (verify, parse, a no-op insert).

Correctness, per configuration: as for the Stripe benchmark (``bench/ingest_common.py``): no answer other
than 2xx; no request to the app repeated a webhook-id; inbound_events rows between the 2xx answers and the
requests written, one RQ job per row; the duplicate run adds nothing; the count-bounded leg adds exactly one
row per 2xx answer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from bench import common, ingest_common
from bench.common import ROOT, BenchError, kb_env
from bench.ingest_common import RequestFiles, duplicates_leg, report, run_configs
from bench.loadgen import SignedPosts

TARGET = 0.5
FULL = ingest_common.FULL
QUICK = ingest_common.QUICK
PATH = "/webhooks/kraty"
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
NAMESPACE = "demo"
# the game's secrets: the first signs (the current one), the second is an older one still live (rotation)
SECRET = "whsec_" + base64.b64encode(b"kraty-bridge-bench-secret-current-0001").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"kraty-bridge-bench-secret-previous-002").decode()


def write_catalog(workdir: Path) -> str:
    """The example catalog with ``kraty_webhook_secrets`` for game demo."""
    text = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    anchor = 'negative_balance_policy = "fail"'
    if anchor not in text or "\nkraty_webhook_secrets" in text:
        raise BenchError("config/examples/catalog.toml changed: cannot add kraty_webhook_secrets to game demo")
    path = workdir / "catalog-kraty.toml"
    path.write_text(text.replace(anchor, f'{anchor}\nkraty_webhook_secrets = ["{SECRET}", "{OLD_SECRET}"]', 1))
    return str(path)


# ------------------------------------------------------------------------------------------------ webhooks
def _event(n: int, tag: str) -> dict:
    """Kraty's n-th event of a file: a wallet or inventory change of one of 1000 players."""
    common_fields = {"externalPlayerId": f"player-{n % 1000}", "reason": "purchase",
                     "sourceRefId": f"txn-{tag}-{n:08d}", "ledgerEntryId": f"le_{tag}{n:08d}"}
    if n % 2:
        data = {"itemKey": "sword", "delta": 1, "quantity": 1 + n % 7, **common_fields}
        kind = "inventory.changed"
    else:
        data = {"currencyKey": "gems", "delta": 100, "balance": 100 * (1 + n % 50), **common_fields}
        kind = "wallet.changed"
    return {"id": f"evt_{tag}{n:08d}", "type": kind, "createdAt": "2026-11-21T10:00:00.123Z",
            "studioId": "studio_demo", "gameId": NAMESPACE, "data": data}


class WebhookFiles(RequestFiles):
    """Files of distinct signed Kraty webhooks, generated on demand; every webhook-id unique in the run."""
    PATH, HEADER, NOUN = PATH, ",".join(HEADERS), "webhook"

    def __init__(self, workdir: Path):
        super().__init__(workdir, "kraty-webhooks")
        self.key = base64.b64decode(SECRET[len("whsec_"):])
        self.checked = False

    def write(self, label: str, count: int) -> SignedPosts:
        """``count`` new webhooks, signed now."""
        tag, now = f"{uuid.uuid4().hex[:10]}{self.serial + 1:02d}", int(time.time())

        def lines():
            for n in range(count):
                msg_id = f"msg_{tag}{n:08d}"
                body = json.dumps(_event(n, tag), separators=(",", ":"))
                mac = hmac.new(self.key, f"{msg_id}.{now}.{body}".encode(), hashlib.sha256).digest()
                signature = f"v1,{base64.b64encode(mac).decode()}"
                if not self.checked:   # the hand-made signature is the one the library makes
                    Webhook(SECRET).verify(body, dict(zip(HEADERS, (msg_id, str(now), signature), strict=True)))
                    self.checked = True
                yield msg_id, f"{msg_id}\t{now}\t{signature}\t{body}"
        return self._write(label, lines())


# ------------------------------------------------------------------------------------------------ runs
def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    env = kb_env(backends, write_catalog(workdir))
    started = time.perf_counter()
    results = run_configs("kraty", backends, env, workdir, opts, lambda: WebhookFiles(workdir), warm_rate=2000)
    return report("kraty", "KRATY  signed Kraty webhooks ingested", backends, opts, quick, results, started, TARGET,
                  "every app request a new wallet.changed / inventory.changed webhook (~0.4 KB, fresh webhook-id, "
                  "Standard Webhooks v1 signature; the game lists 2 live secrets)",
                  (duplicates_leg(opts, "webhooks"),))
