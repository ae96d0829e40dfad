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
one token with distinct tokens). The keys come from a local certs endpoint (``tests/support/google_push_tokens.py``'s
``CertsServer``, ``{kid: PEM}``, ``Cache-Control: max-age`` of 6 hours, as Google's is hours) named by
``KB_GOOGLE_CERTS_URL``; the catalog is the example one with the tests' ``[games.demo.google_play]`` table
(``tests/support/google_play.py``) and a generated service account key. The requests are written to a file
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
import time
import tomllib
from pathlib import Path

from bench import common, ingest_common
from bench.common import ROOT, BenchError, kb_env
from bench.ingest_common import RequestFiles, duplicates_leg, report, run_configs
from bench.loadgen import SignedPosts

TARGET = 0.4
FULL = {**ingest_common.FULL, "verify": 2000}
QUICK = {**ingest_common.QUICK, "verify": 50}
PATH = "/webhooks/google-play"
HEADER = "Authorization"
CERTS_MAX_AGE = 6 * 3600
TOKEN_REUSE = 45 * 60            # a token older than this is replaced (Pub/Sub's live an hour)
SUBSCRIPTION = "projects/demo-project/subscriptions/play-rtdn-push"


# ------------------------------------------------------------------------------------------------ setup
def _google():
    """The tests' Google helpers: keys, certs endpoint, tokens, catalog table (imported late: only this
    benchmark needs them)."""
    from tests.support import google_play as google_support, google_push_tokens as google_tokens
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


class PushFiles(RequestFiles):
    """Files of distinct pushes (``SignedPosts``: ``Bearer <token>`` TAB envelope), generated on demand;
    every messageId and purchase token unique in the run, one push token for all (replaced when it is
    ``TOKEN_REUSE`` old, as Pub/Sub would before it expires)."""
    PATH, HEADER, NOUN = PATH, HEADER, "push"

    def __init__(self, workdir: Path):
        super().__init__(workdir, "google-play-pushes")
        self.next_message = 10_000_000_000_000_000 + int(time.time()) % 100_000 * 10_000_000_000
        self.token, self.minted = "", 0.0

    def bearer(self) -> str:
        if time.time() - self.minted > TOKEN_REUSE:
            self.token, self.minted = _google()[1].make_push_token(), time.time()
        return f"Bearer {self.token}"

    def write(self, label: str, count: int) -> SignedPosts:
        """``count`` new pushes, published now."""
        bearer = self.bearer()

        def lines():
            for _ in range(count):
                self.next_message += 1
                message_id = str(self.next_message)
                yield message_id, f"{bearer}\t{push_body(message_id)}"
        return self._write(label, lines())


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
    with tokens.CertsServer(max_age=CERTS_MAX_AGE) as certs:
        env = kb_env(backends, catalog, KB_GOOGLE_CERTS_URL=certs.url)
        in_process = verify_costs(certs.url, opts["verify"])

        def count_fetches(result: dict) -> None:
            result["certs_fetches"], workers = certs.hits, result["workers"]
            if not 0 < certs.hits <= workers:
                result["correctness"]["ok"] = False
                result["correctness"]["problems"].append(
                    f"the certs endpoint was fetched {certs.hits} times by {workers} workers (max-age "
                    f"{CERTS_MAX_AGE} s: at most once each)")
        results = run_configs("google-play", backends, env, workdir, opts, lambda: PushFiles(workdir),
                              warm_rate=2000, before=lambda: certs.reset(max_age=CERTS_MAX_AGE),
                              after=count_fetches)
    v = in_process
    return report("google_play", "GOOGLE PLAY  verified Pub/Sub push notifications ingested", backends, opts, quick,
                  results, started, TARGET, "every app request a new push (distinct messageId and purchase token, "
                  f"one-time product PURCHASED, ~{v['body_bytes'] / 1000:.1f} KB envelope) with an RS256 OIDC push "
                  "token; all requests carry the same valid token (exp an hour ahead), as Pub/Sub reuses one for its "
                  "lifetime; the app verifies it on every request all the same", (duplicates_leg(opts, "pushes"),),
                  columns={"certs GETs": lambda r: r["certs_fetches"]},
                  legend=("certs GETs: fetches of the certs endpoint by the app's workers during the configuration",),
                  in_process=f"push token verification in this process: {v['ms_per_token']:.3f} ms CPU per request "
                  f"with the app's PushVerifier ({v['tokens']} checks of one token; {v['ms_per_distinct_token']:.3f} "
                  f"ms over {v['distinct_tokens']} distinct tokens), {v['stock_verify_token_ms']:.3f} ms with "
                  f"google-auth's id_token.verify_token (certs response cached, parsed on each call); certs fetched "
                  f"{v['certs_fetches']} times",
                  extra={"one_token_for_all_requests": True, "certs_max_age_s": CERTS_MAX_AGE,
                         "verification_in_process": in_process})
