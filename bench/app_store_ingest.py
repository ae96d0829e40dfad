"""App Store ingest: signed App Store Server Notifications V2 (``POST /webhooks/app-store``) under
gunicorn vs a bare Flask endpoint on the same path (reads the body, answers a small JSON 200) under the
very same gunicorn settings.

Target: the real endpoint takes at least 0.3 of the bare endpoint's requests/s. Every request to the app
is a distinct ``ONE_TIME_CHARGE`` notification (Sandbox, bundle ``com.demo.game`` of game ``demo``, about
9 KB like Apple's) whose ``signedPayload`` and nested ``signedTransactionInfo`` are each an ES256 JWS with
a three-certificate x5c chain, so each request verifies two signatures and two chains (the app's chain
cache answers for the chain once it has seen it: Apple signs every notification with the same chain, and
so does this benchmark), picks the game, inserts an ``inbound_events`` row, commits and enqueues its RQ
job (no worker runs: the jobs accumulate, and Redis is flushed between configurations). The chain is the
tests' own CA (``tests/support/apple_ca.py``), its root written next to a copy of the example catalog with a
``[games.demo.app_store]`` table and pinned with ``KB_APPLE_ROOT_SHA256``. The notifications are signed
into a file right before each load run and the load client takes them in turn; the bare endpoint ignores
what it reads, so its runs may repeat lines. Secondary runs: Production notifications (the pinned-root
verifier and the app Apple id check), and replays of notifications already recorded (the
duplicate-delivery rate: verify, parse, a no-op insert).

In-process, the same notifications are verified by the app's ``AppStoreVerifiers`` (counting the chain
cache's hits) and by Apple's library's stock ``SignedDataVerifier``: the CPU one verification costs
with and without what the bridge caches.

Correctness, per configuration: as for the Stripe benchmark (``bench/ingest_common.py``): no answer
other than 2xx; no request to the app repeated a notification; inbound_events rows lie between the 2xx
answers and the requests written, one RQ job per row; the duplicate run adds no row; a count-bounded leg
adds exactly one row per 2xx answer.
"""
from __future__ import annotations

import json
import time
import tomllib
import uuid
from pathlib import Path

from bench import common, ingest_common
from bench.common import ROOT, BenchError, kb_env
from bench.ingest_common import (
    Leg,
    RequestFiles,
    duplicates_leg,
    lines_for,
    report,
    run_configs,
    slice_run,
)
from bench.loadgen import SignedPosts

TARGET = 0.3
FULL = {**ingest_common.FULL, "production": 3.0, "bare_lines": 1500, "verify": 1000}
QUICK = {**ingest_common.QUICK, "production": 1.0, "bare_lines": 200, "verify": 40}
PATH = "/webhooks/app-store"
KIND = "ONE_TIME_CHARGE"
APP_STORE_TABLE = """
[games.demo.app_store]
bundle_id = "{bundle_id}"
app_apple_id = {app_apple_id}
allow_production = true
root_certificates = ["apple-root.cer"]
"""


# ------------------------------------------------------------------------------------------------ setup
def _apple():
    """The tests' Apple-shaped CA (imported late: only this benchmark needs it)."""
    from tests.support import apple_ca
    return apple_ca


def write_catalog(workdir: Path, chain) -> str:
    """The example catalog with an App Store table for game demo (it already takes Sandbox data), its root
    certificate file (DER) beside it."""
    apple = _apple()
    text = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    if "app_store" in tomllib.loads(text)["games"]["demo"]:
        raise BenchError("config/examples/catalog.toml already has a [games.demo.app_store] table")
    folder = workdir / "app-store"
    folder.mkdir(exist_ok=True)
    chain.write_root(folder, "apple-root.cer")
    path = folder / "catalog.toml"
    path.write_text(text + APP_STORE_TABLE.format(bundle_id=apple.BUNDLE_ID, app_apple_id=apple.APP_APPLE_ID))
    return str(path)


# ------------------------------------------------------------------------------------------------ notifications
class NotificationFiles(RequestFiles):
    """Files of distinct signed notifications (``SignedPosts`` without a header: the signature is in the
    body), generated on demand; every notificationUUID and transactionId unique in the run."""
    PATH, NOUN = PATH, "notification"

    def __init__(self, workdir: Path, chain):
        super().__init__(workdir, "app-store-notifications")
        self.chain = chain
        self.next_transaction = 2_000_000_000_000_000 + int(time.time()) % 100_000 * 1_000_000_000

    def signed(self, environment: str = "Sandbox") -> tuple[str, str, str]:
        """(notificationUUID, signedPayload, its signedTransactionInfo) of a new notification, signed now."""
        apple = _apple()
        self.next_transaction += 1
        tx = apple.transaction(environment=environment, transaction_id=str(self.next_transaction),
                               product_id="com.demo.gems100", app_account_token=str(uuid.uuid4()))
        signed_tx = apple.sign_jws(tx, self.chain)
        note = str(uuid.uuid4())
        payload = apple.notification(KIND, environment=environment, signed_transaction=signed_tx,
                                     notification_uuid=note)
        return note, apple.sign_jws(payload, self.chain), signed_tx

    def write(self, label: str, count: int, environment: str = "Sandbox") -> SignedPosts:
        """``count`` new notifications, signed now."""
        def lines():
            for _ in range(count):
                note, signed, _ = self.signed(environment)
                yield note, "\t" + json.dumps({"signedPayload": signed}, separators=(",", ":"))
        return self._write(label, lines())


# ------------------------------------------------------------------------------------------------ in-process
def verify_costs(catalog_path: str, chain, count: int) -> dict:
    """CPU per notification (its JWS and its transaction's) verified in this process: by the app's
    verifiers (chain cache on; its hits counted) and by the library's stock SignedDataVerifier."""
    from appstoreserverlibrary.models.Environment import Environment
    from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier

    from config.catalog import load_catalog
    from middleware.stores.app_store_verify import AppStoreVerifiers
    apple = _apple()
    files = NotificationFiles(Path(catalog_path).parent, chain)
    try:
        signed = [files.signed() for _ in range(count + 1)]
    finally:
        files.close()
    verifiers = AppStoreVerifiers(load_catalog(catalog_path), {chain.root.sha256})
    verifiers.notification(signed[0][1])      # the first sight of the chain: verified in full, then cached
    first_hits = verifiers.chain_cache_hits()
    t0 = time.process_time()
    for _, payload, _ in signed[1:]:
        verified = verifiers.notification(payload)
        if verified.transaction is None or verified.environment != "Sandbox":
            raise BenchError("in-process verification did not return the transaction")
    ours = (time.process_time() - t0) / count
    hits = verifiers.chain_cache_hits() - first_hits
    stock = SignedDataVerifier([chain.root.der], False, Environment.SANDBOX, apple.BUNDLE_ID, apple.APP_APPLE_ID)
    sample = signed[1:1 + max(1, min(count, 200))]
    t0 = time.process_time()
    for _, payload, signed_tx in sample:
        stock.verify_and_decode_notification(payload)
        stock.verify_and_decode_signed_transaction(signed_tx)
    library = (time.process_time() - t0) / len(sample)
    return {"notifications": count, "chain_verifications": 2 * count, "chain_cache_hits": hits,
            "ms_per_notification": round(ours * 1000, 3),
            "stock_library_ms_per_notification": round(library * 1000, 3),
            "stock_sample": len(sample), "body_bytes": len(json.dumps({"signedPayload": signed[1][1]}))}


# ------------------------------------------------------------------------------------------------ runs
def _production_leg(opts: dict):
    """After the rounds: a run of Production notifications (the pinned-root verifier, the app Apple id check)."""
    def legs(app, groups, slices, files) -> dict:
        rate = max(s["rps"] for s in slices["app"])
        posts = files.write("production", lines_for(rate, opts["production"], opts["connections"]),
                            environment="Production")
        return {"production": slice_run(app, groups, posts, opts, "app-production", opts["production"])}
    return legs


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    chain = _apple().default_chain()
    catalog = write_catalog(workdir, chain)
    env = kb_env(backends, catalog, KB_APPLE_ROOT_SHA256=chain.root.sha256)
    started = time.perf_counter()
    in_process = verify_costs(catalog, chain, opts["verify"])
    results = run_configs("app-store", backends, env, workdir, opts, lambda: NotificationFiles(workdir, chain),
                          warm_rate=1000, extra_legs=_production_leg(opts))
    v = in_process
    production = Leg("production", "prod", "Production", "production",
                     f"prod = {opts['production']:.0f} s of Production notifications")
    return report("app_store", "APP STORE  signed App Store notifications ingested", backends, opts, quick, results,
                  started, TARGET, f"every app request a new signed {KIND} notification (Sandbox, "
                  f"~{v['body_bytes'] / 1000:.0f} KB, two ES256 JWS with x5c chains)",
                  (production, duplicates_leg(opts, "notifications")),
                  in_process=f"verification in this process, {v['notifications']} notifications (2 JWS + 2 chains "
                  f"each): {v['ms_per_notification']:.3f} ms CPU per notification with the app's verifiers (chain "
                  f"cache hits {v['chain_cache_hits']} of {v['chain_verifications']} chain checks), "
                  f"{v['stock_library_ms_per_notification']:.3f} ms with the library's stock SignedDataVerifier",
                  extra={"verification_in_process": in_process})
