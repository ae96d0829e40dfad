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

Correctness, per configuration: no answer other than 2xx; no request to the app repeated an event;
inbound_events rows lie between the 2xx answers and the requests written (wrk stops its clock with up to
one request per connection in flight, which the server still commits), and one RQ job per row; the
duplicate run adds no row; a count-bounded leg (the Python client, which reads every answer) adds
exactly one row per 2xx answer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text

from workers.queues import FULFILMENT_QUEUE

from . import common, profile
from .common import ROOT, BenchError, kb_env, table, verdict
from .ingest import FULL as INGEST_FULL
from .loadgen import SignedPosts, have_wrk, run_load, run_python
from .measure import CpuMeter, service_pids
from .procs import Gunicorn
from .profile import Profile

TARGET = 0.5
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, exact=1200, exact_connections=8, bare_lines=4000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=1.0, rounds=1, warmup=0.5, connections=4, unloaded=1.0,
             duplicates=1.0, exact=48, exact_connections=4, bare_lines=400)
BARE = "bench.bare_app:app"
APP = "app:create_app()"
NAMESPACE = "demo"
PATH = f"/webhooks/stripe/{NAMESPACE}"
SECRET = "whsec_demo_test_secret"   # config/examples/catalog.toml, game demo (allow_sandbox = true)
HEADER = "Stripe-Signature"
COMPONENTS = ("gunicorn", "postgres", "redis", "client")


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


def _lines_for(rate: float, seconds: float, connections: int) -> int:
    """Enough distinct events for a time-bounded run at about ``rate`` req/s, with room to spare."""
    return int(rate * seconds * 2) + 50 * connections + 500


# ------------------------------------------------------------------------------------------------ ledger
class Ledger:
    def __init__(self, database_url: str, redis_url: str):
        self.engine = create_engine(database_url)
        self.redis = Redis.from_url(redis_url)

    def clear(self) -> None:
        common.clear_ledger(self.engine)
        self.redis.flushdb()

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM inbound_events")).scalar_one()

    def settle(self, timeout: float = 30.0) -> int:
        """The row count once it stops moving: the requests in flight when a client stopped its clock are
        still served (and committed) after it returns."""
        deadline, last = time.monotonic() + timeout, self.rows()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.rows()
            if now == last:
                return now
            last = now
        raise BenchError(f"inbound_events still growing {timeout:.0f} s after the load stopped")

    def recorded(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(text("SELECT provider_event_id FROM inbound_events")).scalars())

    def outcomes(self) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(text("SELECT outcome, count(*) FROM inbound_events GROUP BY outcome")).all())

    def jobs(self) -> int:
        return Queue(FULFILMENT_QUEUE, connection=self.redis).count

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


# ------------------------------------------------------------------------------------------------ runs
def _slice(server: Gunicorn, groups: dict, posts: SignedPosts, opts: dict, label: str, seconds: float,
           spy_name: str | None = None) -> dict:
    """One measured load run against ``server``, with the CPU each process group used meanwhile."""
    spy = Profile(server.worker_pids()[0], seconds, profile.out_path(spy_name)) if spy_name else None
    meter = CpuMeter({"gunicorn": server.pids(), **groups}).start()
    result = run_load(server.url, label, seconds, opts["connections"], posts=posts)
    cpu = meter.stop()
    if spy is not None and spy.finish():
        print(f"profile of one {label} worker: {spy.out}")
    cpu["client"] = result.client_cpu
    return {**result.as_dict(), "cpu_cores": cpu}


def _combine(slices: list[dict], unloaded) -> dict:
    """Rounds of one side added up: req/s over all rounds, p50 the mean, p99 the worst of the rounds."""
    requests, seconds = sum(s["requests"] for s in slices), sum(s["seconds"] for s in slices)
    rps = round(requests / seconds, 1) if seconds else 0.0
    cpu = {k: round(sum((s["cpu_cores"].get(k) or 0) * s["seconds"] for s in slices) / seconds, 3)
           for k in COMPONENTS} if seconds else {}
    p50s = [s["p50_ms"] for s in slices if s["p50_ms"] is not None]
    p99s = [s["p99_ms"] for s in slices if s["p99_ms"] is not None]
    return {"client": slices[0]["client"], "connections": slices[0]["connections"], "requests": requests,
            "errors": sum(s["errors"] for s in slices), "wrapped": sum(s["wrapped"] or 0 for s in slices),
            "seconds": round(seconds, 3), "rps": rps,
            "p50_ms": round(sum(p50s) / len(p50s), 2) if p50s else None, "p99_ms": max(p99s) if p99s else None,
            "cpu_cores": cpu, "cpu_ms_per_request": {k: round(v / rps * 1000, 3) if rps else None
                                                     for k, v in cpu.items()},
            "unloaded": {"rps": unloaded.rps, "p50_ms": unloaded.p50_ms, "p99_ms": unloaded.p99_ms,
                         "errors": unloaded.errors},
            "rounds": slices}


def _one_config(kind: str, workers: int, threads: int, env: dict, ledger: Ledger, workdir: Path,
                opts: dict) -> dict:
    """Both servers up side by side (an idle one costs nothing); bare and app runs alternate, so a burst
    of other work on the shared machine hits both sides alike."""
    name = f"{kind} w={workers}" + (f" t={threads}" if kind == "gthread" else "")
    groups = service_pids(env["KB_DATABASE_URL"])
    ledger.clear()
    files = EventFiles(workdir)
    fresh: list = []              # every app run that sent new events: (label, LoadResult-like dict)
    servers = {}
    try:
        servers["bare"] = Gunicorn(BARE, workers, kind, threads, env, workdir / "gunicorn-stripe-bare.log")
        servers["app"] = Gunicorn(APP, workers, kind, threads, env, workdir / "gunicorn-stripe-app.log",
                                  ready_path="/healthz")
        bare_posts = files.write("bare", opts["bare_lines"])
        warm_posts = files.write("warm-app", _lines_for(2000, opts["warmup"], opts["connections"]))
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
                    spy_name = f"stripe-app-{kind}-w{workers}" if n == 0 else None
                slices[label].append(_slice(server, groups, posts, opts, label, opts["seconds"], spy_name))
                if label == "app":
                    fresh.append((f"round {n + 1}", slices[label][-1]))
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
    out = {"config": name, "worker_class": kind, "workers": workers, "threads": threads}
    for label in servers:
        out[label] = _combine(slices[label], unloaded[label])
    dup_rps = duplicates["rps"]
    out["duplicates"] = {k: duplicates[k] for k in ("requests", "errors", "seconds", "rps", "p50_ms", "p99_ms",
                                                     "wrapped")}
    out["duplicates"]["ratio"] = round(dup_rps / out["bare"]["rps"], 3) if out["bare"]["rps"] else None
    out["ratio"] = round(out["app"]["rps"] / out["bare"]["rps"], 3) if out["bare"]["rps"] else None
    out["correctness"] = _check(fresh, ledger, (rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup,
                                                duplicates), (rows_before_exact, rows_after_exact, exact))
    return out


def _check(fresh: list, ledger: Ledger, dup: tuple, exact: tuple) -> dict:
    """See the module's docstring."""
    answered = sum(r["requests"] - r["errors"] for _, r in fresh)
    sent = sum(r["sent"] if r["sent"] is not None else r["requests"] for _, r in fresh)
    errors = sum(r["errors"] for _, r in fresh)
    repeated = sum(r["wrapped"] or 0 for _, r in fresh)
    rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup, duplicates = dup
    rows_before_exact, rows_after_exact, exact_run = exact
    rows, jobs, outcomes = ledger.rows(), ledger.jobs(), ledger.outcomes()
    exact_added = rows_after_exact - rows_before_exact
    problems = []
    if errors or duplicates["errors"] or exact_run.errors:
        problems.append(f"non-2xx or failed answers: {errors} fresh, {duplicates['errors']} duplicate, "
                        f"{exact_run.errors} count-bounded")
    if repeated:
        problems.append(f"{repeated} requests to the app repeated an event (the event files were too short)")
    if not answered <= rows <= sent:
        problems.append(f"inbound_events rows {rows} not between the 2xx answers {answered} and the requests "
                        f"written {sent}")
    if jobs != rows:
        problems.append(f"{jobs} RQ jobs queued for {rows} recorded events")
    if outcomes.keys() - {"pending"}:
        problems.append(f"outcomes {outcomes}")
    if rows_after_dup != rows_before_dup or jobs_after_dup != jobs_before_dup:
        problems.append(f"the duplicate run changed rows {rows_before_dup}->{rows_after_dup}, "
                        f"jobs {jobs_before_dup}->{jobs_after_dup}")
    if exact_added != exact_run.requests - exact_run.errors:
        problems.append(f"count-bounded leg: {exact_run.requests - exact_run.errors} 2xx answers, {exact_added} "
                        "rows added")
    return {"ok": not problems, "problems": problems, "answered_2xx": answered, "requests_written": sent,
            "inbound_events": rows, "rq_jobs": jobs, "in_flight_at_stop": sent - answered,
            "duplicate_answers_2xx": duplicates["requests"] - duplicates["errors"],
            "duplicate_rows_added": rows_after_dup - rows_before_dup,
            "exact_leg": {"answered_2xx": exact_run.requests - exact_run.errors, "errors": exact_run.errors,
                          "rows_added": exact_added}}


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    ledger = Ledger(backends.database_url, backends.redis_url)
    env = kb_env(backends, str(ROOT / "config" / "examples" / "catalog.toml"))
    results = []
    started = time.perf_counter()
    try:
        for kind, workers, threads in opts["configs"]:
            results.append(_one_config(kind, workers, threads, env, ledger, workdir, opts))
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
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", _per_request(b), _per_request(a),
                     "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "app req/s", "p50 ms", "p99 ms", "ratio",
                 "dup req/s", "dup ratio", "errors", "bare 1-conn p50/p99", "app 1-conn p50/p99",
                 "bare: CPU ms/req", "app: CPU ms/req", "ledger check"], rows))
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
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}); duplicates {best['duplicates']['rps']:,.0f} req/s "
          f"(ratio {best['duplicates']['ratio']})")
    top_bare = max(r["bare"]["rps"] for r in results)
    headroom = top_bare / max(best["app"]["rps"], 1)
    print(f"client check: this client drove the bare endpoint at {top_bare:,.0f} req/s, {headroom:.1f}x the best app "
          f"rate" + (": the client is not what limits the app" if headroom >= 2 else
                     ": too close to tell whether the client limits the app"))
    correct = all(r["correctness"]["ok"] for r in results)
    summary = {"benchmark": "stripe", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": TARGET,
               "best": {"config": best["config"], "ratio": best["ratio"], "app_rps": best["app"]["rps"],
                        "bare_rps": best["bare"]["rps"], "app_p50_ms": best["app"]["p50_ms"],
                        "app_p99_ms": best["app"]["p99_ms"], "bare_p50_ms": best["bare"]["p50_ms"],
                        "bare_p99_ms": best["bare"]["p99_ms"], "duplicate_rps": best["duplicates"]["rps"],
                        "duplicate_ratio": best["duplicates"]["ratio"]},
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET, "correct": correct,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('stripe', summary)}")
    if not correct:
        raise BenchError("the ledger check failed: " + "; ".join(p for r in results
                                                                  for p in r["correctness"]["problems"]))
    return summary


def _per_request(run: dict) -> str:
    return "/".join(f"{run['cpu_ms_per_request'][k] or 0:.2f}" for k in COMPONENTS)
