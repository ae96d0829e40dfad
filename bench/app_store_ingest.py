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

Correctness, per configuration: as for the Stripe benchmark (``bench/stripe_ingest.py``): no answer
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
from .loadgen import SignedPosts, have_wrk, run_load, run_python
from .measure import service_pids
from .procs import Gunicorn
from .stripe_ingest import COMPONENTS, Ledger, _check, _combine, _lines_for, _per_request, _slice

TARGET = 0.3
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, production=3.0, exact=1200, exact_connections=8, bare_lines=1500, verify=1000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=1.0, rounds=1, warmup=0.5, connections=4, unloaded=1.0,
             duplicates=1.0, production=1.0, exact=48, exact_connections=4, bare_lines=200, verify=40)
BARE = "bench.bare_app:app"
APP = "app:create_app()"
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
def _one_config(kind: str, workers: int, threads: int, env: dict, ledger: Ledger, workdir: Path, chain,
                opts: dict) -> dict:
    """Both servers up side by side (an idle one costs nothing); bare and app runs alternate, so a burst
    of other work on the shared machine hits both sides alike."""
    name = f"{kind} w={workers}" + (f" t={threads}" if kind == "gthread" else "")
    groups = service_pids(env["KB_DATABASE_URL"])
    ledger.clear()
    files = NotificationFiles(workdir, chain)
    fresh: list = []              # every app run that sent new notifications: (label, LoadResult-like dict)
    servers = {}
    try:
        servers["bare"] = Gunicorn(BARE, workers, kind, threads, env, workdir / "gunicorn-app-store-bare.log")
        servers["app"] = Gunicorn(APP, workers, kind, threads, env, workdir / "gunicorn-app-store-app.log",
                                  ready_path="/healthz")
        bare_posts = files.write("bare", opts["bare_lines"])
        warm_posts = files.write("warm-app", _lines_for(1000, opts["warmup"], opts["connections"]))
        run_load(servers["bare"].url, "warm-bare", opts["warmup"], opts["connections"], posts=bare_posts)
        warm = run_load(servers["app"].url, "warm-app", opts["warmup"], opts["connections"], posts=warm_posts)
        fresh.append(("warm-up", warm.as_dict()))
        estimate = warm.rps
        slices: dict[str, list] = {"bare": [], "app": []}
        app_files = []
        for n in range(opts["rounds"]):
            for label, server in servers.items():
                if label == "bare":
                    posts, spy_name = bare_posts, None
                else:
                    posts = files.write(f"app-{n}", _lines_for(estimate, opts["seconds"], opts["connections"]))
                    app_files.append(posts)
                    spy_name = f"app-store-app-{kind}-w{workers}" if n == 0 else None
                slices[label].append(_slice(server, groups, posts, opts, label, opts["seconds"], spy_name))
                if label == "app":
                    fresh.append((f"round {n + 1}", slices[label][-1]))
        rate = max(s["rps"] for s in slices["app"])
        prod_posts = files.write("production", _lines_for(rate, opts["production"], opts["connections"]),
                                 environment="Production")
        production = _slice(servers["app"], groups, prod_posts, opts, "app-production", opts["production"])
        fresh.append(("production", production))
        rows_before_dup, jobs_before_dup = ledger.settle(), ledger.jobs()
        dup_posts = files.replay(app_files, ledger.recorded(), limit=50_000)
        duplicates = _slice(servers["app"], groups, dup_posts, opts, "app-duplicates", opts["duplicates"])
        rows_after_dup, jobs_after_dup = ledger.settle(), ledger.jobs()
        unloaded = {}
        for label, server in servers.items():
            rate = max(s["rps"] for s in slices[label])
            posts = bare_posts if label == "bare" else files.write("one-app", _lines_for(rate, opts["unloaded"], 1))
            unloaded[label] = run_load(server.url, f"one-{label}", opts["unloaded"], 1, posts=posts)
            if label == "app":
                fresh.append(("1 connection", unloaded[label].as_dict()))
        rows_before_exact = ledger.settle()
        exact = run_python(servers["app"].url, "exact", opts["exact_connections"], total=opts["exact"], processes=1,
                           posts=files.write("exact", opts["exact"]))
        fresh.append(("count-bounded", exact.as_dict()))
        rows_after_exact = ledger.settle()
    finally:
        for server in servers.values():
            server.close()
        files.close()
    out = {"config": name, "worker_class": kind, "workers": workers, "threads": threads}
    for label in servers:
        out[label] = _combine(slices[label], unloaded[label])
    bare_rps = out["bare"]["rps"]
    for key, run in (("production", production), ("duplicates", duplicates)):
        out[key] = {k: run[k] for k in ("requests", "errors", "seconds", "rps", "p50_ms", "p99_ms", "wrapped")}
        out[key]["cpu_ms_per_request"] = {k: round((run["cpu_cores"].get(k) or 0) / run["rps"] * 1000, 3)
                                          if run["rps"] else None for k in COMPONENTS}
        out[key]["ratio"] = round(run["rps"] / bare_rps, 3) if bare_rps else None
    out["ratio"] = round(out["app"]["rps"] / bare_rps, 3) if bare_rps else None
    out["correctness"] = _check(fresh, ledger, (rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup,
                                                duplicates), (rows_before_exact, rows_after_exact, exact))
    return out


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
            results.append(_one_config(kind, workers, threads, env, ledger, workdir, chain, opts))
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
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", _per_request(b), _per_request(a),
                     "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "app req/s", "p50 ms", "p99 ms", "ratio",
                 "prod req/s", "prod ratio", "dup req/s", "dup ratio", "errors", "bare 1-conn p50/p99",
                 "app 1-conn p50/p99", "bare: CPU ms/req", "app: CPU ms/req", "ledger check"], rows))
    print("1-conn: latency with one connection (no queueing); p50/p99 under load include queueing.")
    print("CPU ms/req = CPU time per request of gunicorn (master+workers) / PostgreSQL (our backends + server "
          "processes) / redis-server / the load client")
    for r in results:
        c = r["correctness"]
        print(f"ledger check {r['config']}: {c['answered_2xx']} 2xx answers, {c['requests_written']} requests "
              f"written ({c['in_flight_at_stop']} in flight when the client stopped), {c['inbound_events']} "
              f"inbound_events rows, {c['rq_jobs']} RQ jobs; duplicates: {c['duplicate_answers_2xx']} 2xx, "
              f"{c['duplicate_rows_added']} rows added; count-bounded leg: {c['exact_leg']['answered_2xx']} 2xx, "
              f"{c['exact_leg']['rows_added']} rows added" + ("" if c["ok"] else f"; PROBLEMS: {c['problems']}"))
    v = in_process
    print(f"verification in this process, {v['notifications']} notifications (2 JWS + 2 chains each): "
          f"{v['ms_per_notification']:.3f} ms CPU per notification with the app's verifiers (chain cache hits "
          f"{v['chain_cache_hits']} of {v['chain_verifications']} chain checks), "
          f"{v['stock_library_ms_per_notification']:.3f} ms with the library's stock SignedDataVerifier")
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}); Production {best['production']['rps']:,.0f} req/s (ratio "
          f"{best['production']['ratio']}); duplicates {best['duplicates']['rps']:,.0f} req/s "
          f"(ratio {best['duplicates']['ratio']})")
    top_bare = max(r["bare"]["rps"] for r in results)
    headroom = top_bare / max(best["app"]["rps"], 1)
    print(f"client check: this client drove the bare endpoint at {top_bare:,.0f} req/s, {headroom:.1f}x the best app "
          f"rate" + (": the client is not what limits the app" if headroom >= 2 else
                     ": too close to tell whether the client limits the app"))
    correct = all(r["correctness"]["ok"] for r in results)
    summary = {"benchmark": "app_store", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": TARGET,
               "best": {"config": best["config"], "ratio": best["ratio"], "app_rps": best["app"]["rps"],
                        "bare_rps": best["bare"]["rps"], "app_p50_ms": best["app"]["p50_ms"],
                        "app_p99_ms": best["app"]["p99_ms"], "bare_p50_ms": best["bare"]["p50_ms"],
                        "bare_p99_ms": best["bare"]["p99_ms"], "production_rps": best["production"]["rps"],
                        "production_ratio": best["production"]["ratio"], "duplicate_rps": best["duplicates"]["rps"],
                        "duplicate_ratio": best["duplicates"]["ratio"]},
               "verification_in_process": in_process,
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET, "correct": correct,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('app_store', summary)}")
    if not correct:
        raise BenchError("the ledger check failed: " + "; ".join(p for r in results
                                                                  for p in r["correctness"]["problems"]))
    return summary
