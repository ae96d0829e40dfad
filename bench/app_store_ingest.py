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
tests' own CA (``tests/apple_ca.py``), its root written next to a copy of the example catalog with a
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
import shutil
import time
import tomllib
import uuid
from pathlib import Path

from . import common
from .common import ROOT, BenchError, kb_env, table, verdict
from .ingest import FULL as INGEST_FULL
from .ingest_common import (
    Ledger,
    best_summary,
    client_check,
    lines_for,
    per_request,
    print_cpu_legend,
    print_ledger_checks,
    raise_if_incorrect,
    run_config,
    slice_run,
)
from .loadgen import SignedPosts, have_wrk

TARGET = 0.3
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, production=3.0, exact=1200, exact_connections=8, bare_lines=1500, verify=1000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=1.0, rounds=1, warmup=0.5, connections=4, unloaded=1.0,
             duplicates=1.0, production=1.0, exact=48, exact_connections=4, bare_lines=200, verify=40)
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
    from tests import apple_ca
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
class NotificationFiles:
    """Files of distinct signed notifications (``SignedPosts`` without a header: the signature is in the
    body), generated on demand; every notificationUUID and transactionId unique in the run."""

    def __init__(self, workdir: Path, chain):
        self.dir = workdir / f"app-store-notifications-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.chain = chain
        self.serial = 0
        self.next_transaction = 2_000_000_000_000_000 + int(time.time()) % 100_000 * 1_000_000_000
        self.uuids: dict[str, list[str]] = {}   # file -> the notificationUUID of each line

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
        self.serial += 1
        path, notes = self.dir / f"{self.serial:02d}-{label}.txt", []
        with open(path, "w") as fh:
            for _ in range(count):
                note, signed, _ = self.signed(environment)
                notes.append(note)
                fh.write("\t" + json.dumps({"signedPayload": signed}, separators=(",", ":")) + "\n")
        self.uuids[str(path)] = notes
        return SignedPosts(PATH, "", str(path))

    def replay(self, sources: list[SignedPosts], recorded: set[str], limit: int) -> SignedPosts:
        """A file of lines from ``sources`` whose notifications are already recorded."""
        self.serial += 1
        path, kept = self.dir / f"{self.serial:02d}-duplicates.txt", 0
        with open(path, "w") as out:
            for source in sources:
                with open(source.file) as fh:
                    for line, note in zip(fh, self.uuids[source.file], strict=True):
                        if note in recorded and kept < limit:
                            out.write(line)
                            kept += 1
        if kept == 0:
            raise BenchError("no recorded notification to replay as a duplicate")
        self.uuids[str(path)] = []
        return SignedPosts(PATH, "", str(path))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


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
    ledger = Ledger(backends.database_url, backends.redis_url)
    results = []
    try:
        for kind, workers, threads in opts["configs"]:
            results.append(run_config("app-store", kind, workers, threads, env, ledger, workdir,
                                      NotificationFiles(workdir, chain), opts, warm_rate=1000,
                                      extra_legs=_production_leg(opts)))
        ledger.clear()
    finally:
        ledger.close()
    best = max(results, key=lambda r: r["app"]["rps"])
    client = results[0]["bare"]["client"]
    print(f"\nAPP STORE  signed App Store notifications ingested vs bare Flask endpoint, same gunicorn settings  "
          f"[{backends.describe()}]")
    print(f"client: {client}, {opts['connections']} keep-alive connections; per configuration {opts['rounds']} "
          f"round(s) of bare {opts['seconds']:.0f} s then app {opts['seconds']:.0f} s, after {opts['warmup']:.1f} s "
          f"warm-up; every app request a new signed {KIND} notification (Sandbox, "
          f"~{in_process['body_bytes'] / 1000:.0f} KB, two ES256 JWS with x5c chains); p50 = mean over rounds, "
          f"p99 = worst round; prod = {opts['production']:.0f} s of Production notifications; "
          f"dup = {opts['duplicates']:.0f} s replaying recorded notifications")
    rows = []
    for r in results:
        b, a, p, d = r["bare"], r["app"], r["production"], r["duplicates"]
        rows.append([r["config"], b["rps"], b["p50_ms"], b["p99_ms"], a["rps"], a["p50_ms"], a["p99_ms"], r["ratio"],
                     p["rps"], p["ratio"], d["rps"], d["ratio"], a["errors"],
                     f"{b['unloaded']['p50_ms']:.2f}/{b['unloaded']['p99_ms']:.2f}",
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", per_request(b), per_request(a),
                     "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "app req/s", "p50 ms", "p99 ms", "ratio",
                 "prod req/s", "prod ratio", "dup req/s", "dup ratio", "errors", "bare 1-conn p50/p99",
                 "app 1-conn p50/p99", "bare: CPU ms/req", "app: CPU ms/req", "ledger check"], rows))
    print_cpu_legend()
    print_ledger_checks(results)
    v = in_process
    print(f"verification in this process, {v['notifications']} notifications (2 JWS + 2 chains each): "
          f"{v['ms_per_notification']:.3f} ms CPU per notification with the app's verifiers (chain cache hits "
          f"{v['chain_cache_hits']} of {v['chain_verifications']} chain checks), "
          f"{v['stock_library_ms_per_notification']:.3f} ms with the library's stock SignedDataVerifier")
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}); Production {best['production']['rps']:,.0f} req/s (ratio "
          f"{best['production']['ratio']}); duplicates {best['duplicates']['rps']:,.0f} req/s "
          f"(ratio {best['duplicates']['ratio']})")
    headroom = client_check(results, best)
    correct = all(r["correctness"]["ok"] for r in results)
    summary = {"benchmark": "app_store", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": TARGET,
               "best": best_summary(best, production="production", duplicate="duplicates"),
               "verification_in_process": in_process,
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET, "correct": correct,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('app_store', summary)}")
    raise_if_incorrect(results)
    return summary
