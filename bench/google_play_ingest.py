"""Google Play ingest: verified Pub/Sub push notifications (``POST /webhooks/google-play``) under gunicorn
vs a bare Flask endpoint on the same path (reads the body, answers a small JSON 200) under the very same
gunicorn settings.

Target: the real endpoint takes at least 0.4 of the bare endpoint's requests/s. Every request to the app
is a distinct push of a one-time product PURCHASED notification (package ``com.kraty.demo`` of game
``demo``), shaped like Pub/Sub's: the envelope (``messageId``/``message_id``, ``publishTime``/
``publish_time``, ``subscription``, about 0.6 KB) around the base64 DeveloperNotification, with a new
``messageId`` and purchase token on every request, and ``Authorization: Bearer <OIDC JWT>`` (RS256, 2048-bit
key). So each request verifies the token's signature and claims, parses the envelope and the
notification, picks the game, inserts an ``inbound_events`` row, commits and enqueues its RQ job (no
worker runs: the jobs accumulate, and Redis is flushed between configurations; the webhook never calls
the Publisher API, so no fake of it is needed).

Pub/Sub reuses a push token for its lifetime (an hour): all requests of a configuration carry the same
valid token (``exp`` an hour ahead), as they would from one subscription. The app does not cache
verified tokens, so each request checks the signature all the same (the in-process figures below compare
one token with distinct tokens). The keys come from a local certs endpoint (``tests/google_tokens.py``'s
``CertsServer``, ``{kid: PEM}``, ``Cache-Control: max-age`` of 6 hours, as Google's is hours) named by
``KB_GOOGLE_CERTS_URL``; the catalog is the example one with the tests' ``[games.demo.google_play]`` table
(``tests/google_support.py``) and a generated service account key. The requests are written to a file
right before each load run and the load client takes them in turn; the bare endpoint ignores what it
reads, so its runs may repeat lines. A secondary run replays pushes already recorded: the
duplicate-delivery rate (verify, parse, a no-op insert).

In-process, the push token is verified by the app's ``PushVerifier`` (one token over and over, then
distinct tokens) and by google-auth's stock ``id_token.verify_token`` (the certs response cached the same
way): the CPU the check costs with and without the keys parsed once.

Correctness, per configuration: as for the Stripe benchmark (``bench/ingest_common.py``), and the certs
endpoint is fetched at most once per gunicorn worker (its max-age outlasts the run).
"""
from __future__ import annotations

import base64
import json
import secrets
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
    per_request,
    print_cpu_legend,
    print_ledger_checks,
    raise_if_incorrect,
    run_config,
)
from .loadgen import SignedPosts, have_wrk

TARGET = 0.4
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, exact=1200, exact_connections=8, bare_lines=4000, verify=2000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=1.0, rounds=1, warmup=0.5, connections=4, unloaded=1.0,
             duplicates=1.0, exact=48, exact_connections=4, bare_lines=400, verify=50)
PATH = "/webhooks/google-play"
HEADER = "Authorization"
CERTS_MAX_AGE = 6 * 3600
TOKEN_REUSE = 45 * 60            # a token older than this is replaced (Pub/Sub's live an hour)
SUBSCRIPTION = "projects/demo-project/subscriptions/play-rtdn-push"


# ------------------------------------------------------------------------------------------------ setup
def _google():
    """The tests' Google helpers: keys, certs endpoint, tokens, catalog table (imported late: only this
    benchmark needs them)."""
    from tests import google_support, google_tokens
    return google_support, google_tokens


def write_catalog(workdir: Path) -> str:
    """The example catalog with the tests' Google Play table for game demo and a service account key file
    beside it (the webhook never uses the key: only the worker calls the Publisher API)."""
    support, tokens = _google()
    example = ROOT / "config" / "examples" / "catalog.toml"
    if "google_play" in tomllib.loads(example.read_text())["games"]["demo"]:
        raise BenchError("config/examples/catalog.toml already has a [games.demo.google_play] table")
    folder = workdir / "google-play"
    folder.mkdir(exist_ok=True)
    return support.write_catalog(str(example), folder, tokens.service_account_info())


# ------------------------------------------------------------------------------------------------ pushes
def _purchase_token() -> str:
    """A new purchase token shaped like Google's (``<24 letters>.AO-J1O<base64url>``, ~140 characters)."""
    letters = "".join(secrets.choice("abcdefghijklmnop") for _ in range(24))
    return f"{letters}.AO-J1O{secrets.token_urlsafe(84)}"


def push_body(message_id: str) -> str:
    """The body of a new push: a one-time product PURCHASED notification (a new purchase token), published
    now, in a Pub/Sub push envelope as Pub/Sub writes it (both spellings of the id and time)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    notification = _google()[0].one_time(_purchase_token())
    notification["eventTimeMillis"] = str(int(now * 1000) - 150)
    data = base64.b64encode(json.dumps(notification, separators=(",", ":")).encode()).decode()
    return json.dumps({"message": {"attributes": {}, "data": data, "messageId": message_id, "message_id": message_id,
                                   "publishTime": stamp, "publish_time": stamp},
                       "subscription": SUBSCRIPTION}, separators=(",", ":"))


class PushFiles:
    """Files of distinct pushes (``SignedPosts``: ``Bearer <token>`` TAB envelope), generated on demand;
    every messageId and purchase token unique in the run, one push token for all (replaced when it is
    ``TOKEN_REUSE`` old, as Pub/Sub would before it expires)."""

    def __init__(self, workdir: Path):
        self.dir = workdir / f"google-play-pushes-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.serial = 0
        self.next_message = 10_000_000_000_000_000 + int(time.time()) % 100_000 * 10_000_000_000
        self.token, self.minted = "", 0.0
        self.ids: dict[str, list[str]] = {}   # file -> the messageId of each line

    def bearer(self) -> str:
        if time.time() - self.minted > TOKEN_REUSE:
            self.token, self.minted = _google()[1].make_push_token(), time.time()
        return f"Bearer {self.token}"

    def write(self, label: str, count: int) -> SignedPosts:
        """``count`` new pushes, published now."""
        self.serial += 1
        path, ids, bearer = self.dir / f"{self.serial:02d}-{label}.txt", [], self.bearer()
        with open(path, "w") as fh:
            for _ in range(count):
                self.next_message += 1
                message_id = str(self.next_message)
                ids.append(message_id)
                fh.write(f"{bearer}\t{push_body(message_id)}\n")
        self.ids[str(path)] = ids
        return SignedPosts(PATH, HEADER, str(path))

    def replay(self, sources: list[SignedPosts], recorded: set[str], limit: int) -> SignedPosts:
        """A file of lines from ``sources`` whose pushes are already recorded."""
        self.serial += 1
        path, kept = self.dir / f"{self.serial:02d}-duplicates.txt", 0
        with open(path, "w") as out:
            for source in sources:
                with open(source.file) as fh:
                    for line, message_id in zip(fh, self.ids[source.file], strict=True):
                        if message_id in recorded and kept < limit:
                            out.write(line)
                            kept += 1
        if kept == 0:
            raise BenchError("no recorded push to replay as a duplicate")
        self.ids[str(path)] = []
        return SignedPosts(PATH, HEADER, str(path))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ in-process
def verify_costs(certs_url: str, count: int) -> dict:
    """CPU per push token verified in this process: by the app's ``PushVerifier`` (one token again and
    again, as Pub/Sub sends it, then distinct tokens) and by google-auth's stock ``id_token.verify_token``
    with the certs response cached alike (it parses the certificates on every call)."""
    from google.oauth2 import id_token

    from middleware.stores.google_push_verify import CachingRequest, PushVerifier
    _, tokens = _google()
    audiences, accounts = frozenset({tokens.AUDIENCE}), frozenset({tokens.PUSH_ACCOUNT})
    verifier = PushVerifier(certs_url)
    same = f"Bearer {tokens.make_push_token()}"
    verifier.verify(same, audiences, accounts)          # fetches the certs and parses them, once
    t0 = time.process_time()
    for _ in range(count):
        verifier.verify(same, audiences, accounts)
    ours = (time.process_time() - t0) / count
    sample = max(1, min(count, 200))
    distinct = [f"Bearer {tokens.make_push_token(sub=f'{n:012d}')}" for n in range(sample)]
    t0 = time.process_time()
    for header in distinct:
        verifier.verify(header, audiences, accounts)
    ours_distinct = (time.process_time() - t0) / sample
    request = CachingRequest({certs_url})
    stock_token = same.removeprefix("Bearer ")
    id_token.verify_token(stock_token, request, audience=tokens.AUDIENCE, certs_url=certs_url)
    t0 = time.process_time()
    for _ in range(sample):
        claims = id_token.verify_token(stock_token, request, audience=tokens.AUDIENCE, certs_url=certs_url)
    stock = (time.process_time() - t0) / sample
    if claims.get("email") != tokens.PUSH_ACCOUNT:
        raise BenchError("google-auth's verify_token did not return the push token's claims")
    return {"tokens": count, "ms_per_token": round(ours * 1000, 3),
            "distinct_tokens": sample, "ms_per_distinct_token": round(ours_distinct * 1000, 3),
            "stock_verify_token_ms": round(stock * 1000, 3),
            "certs_fetches": verifier.request.fetches + request.fetches,
            "body_bytes": len(push_body("1" * 17)), "token_chars": len(stock_token)}


# ------------------------------------------------------------------------------------------------ runs
def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    _, tokens = _google()
    catalog = write_catalog(workdir)
    started = time.perf_counter()
    ledger = Ledger(backends.database_url, backends.redis_url)
    results = []
    with tokens.CertsServer(max_age=CERTS_MAX_AGE) as certs:
        env = kb_env(backends, catalog, KB_GOOGLE_CERTS_URL=certs.url)
        in_process = verify_costs(certs.url, opts["verify"])
        try:
            for kind, workers, threads in opts["configs"]:
                certs.reset(max_age=CERTS_MAX_AGE)
                result = run_config("google-play", kind, workers, threads, env, ledger, workdir, PushFiles(workdir),
                                    opts, warm_rate=2000)
                result["certs_fetches"] = certs.hits
                if not 0 < certs.hits <= workers:
                    result["correctness"]["ok"] = False
                    result["correctness"]["problems"].append(
                        f"the certs endpoint was fetched {certs.hits} times by {workers} workers (max-age "
                        f"{CERTS_MAX_AGE} s: at most once each)")
                results.append(result)
            ledger.clear()
        finally:
            ledger.close()
    best = max(results, key=lambda r: r["app"]["rps"])
    client = results[0]["bare"]["client"]
    v = in_process
    print(f"\nGOOGLE PLAY  verified Pub/Sub push notifications ingested vs bare Flask endpoint, same gunicorn "
          f"settings  [{backends.describe()}]")
    print(f"client: {client}, {opts['connections']} keep-alive connections; per configuration {opts['rounds']} "
          f"round(s) of bare {opts['seconds']:.0f} s then app {opts['seconds']:.0f} s, after {opts['warmup']:.1f} s "
          f"warm-up; every app request a new push (distinct messageId and purchase token, one-time product "
          f"PURCHASED, ~{v['body_bytes'] / 1000:.1f} KB envelope) with an RS256 OIDC push token; all requests "
          f"carry the same valid token (exp an hour ahead), as Pub/Sub reuses one for its lifetime; the app "
          f"verifies it on every request all the same; p50 = mean over rounds, p99 = worst round; "
          f"dup = {opts['duplicates']:.0f} s replaying recorded pushes")
    rows = []
    for r in results:
        b, a, d = r["bare"], r["app"], r["duplicates"]
        rows.append([r["config"], b["rps"], b["p50_ms"], b["p99_ms"], a["rps"], a["p50_ms"], a["p99_ms"], r["ratio"],
                     d["rps"], d["ratio"], a["errors"],
                     f"{b['unloaded']['p50_ms']:.2f}/{b['unloaded']['p99_ms']:.2f}",
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", per_request(b), per_request(a),
                     r["certs_fetches"], "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "app req/s", "p50 ms", "p99 ms", "ratio",
                 "dup req/s", "dup ratio", "errors", "bare 1-conn p50/p99", "app 1-conn p50/p99",
                 "bare: CPU ms/req", "app: CPU ms/req", "certs GETs", "ledger check"], rows))
    print_cpu_legend()
    print("certs GETs: fetches of the certs endpoint by the app's workers during the configuration")
    print_ledger_checks(results)
    print(f"push token verification in this process: {v['ms_per_token']:.3f} ms CPU per request with the app's "
          f"PushVerifier ({v['tokens']} checks of one token; {v['ms_per_distinct_token']:.3f} ms over "
          f"{v['distinct_tokens']} distinct tokens), {v['stock_verify_token_ms']:.3f} ms with google-auth's "
          f"id_token.verify_token (certs response cached, parsed on each call); certs fetched "
          f"{v['certs_fetches']} times")
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}); duplicates {best['duplicates']['rps']:,.0f} req/s "
          f"(ratio {best['duplicates']['ratio']})")
    headroom = client_check(results, best)
    correct = all(r["correctness"]["ok"] for r in results)
    summary = {"benchmark": "google_play", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": TARGET,
               "best": best_summary(best, duplicate="duplicates"),
               "one_token_for_all_requests": True, "certs_max_age_s": CERTS_MAX_AGE,
               "verification_in_process": in_process,
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET, "correct": correct,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('google_play', summary)}")
    raise_if_incorrect(results)
    return summary
