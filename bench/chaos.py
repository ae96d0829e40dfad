"""``python -m bench chaos``: exactly-once and bounded recovery under faults, on real processes.

Starts its own PostgreSQL cluster and Redis (``bench/servers.py``), the Kraty emulator, gunicorn and several
``python -m workers``, each its own process; storefront clients (``chaos_clients.py``) send orders through
the AccelByte-compatible API and signed Stripe events and revoke a share of them, while the emulator injects
Kraty faults and the run SIGKILLs workers (the RQ scheduler-lock holder and the reconciler's runner among
them) and web workers, kills Redis (it comes back empty) and restarts PostgreSQL. A killed worker is
replaced, as a supervisor would. At the end it waits for everything to settle and checks Kraty's ledger
(``chaos_check.py``), and prints the longest time any work sat without progress against the bound
``KB_RECONCILE_STALE_SECONDS + KB_RECONCILE_INTERVAL_SECONDS``. Exit code 0 when every check passes.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy.exc import SQLAlchemyError

from middleware.ledger import migrate

from bench import chaos_faults, common, procs
from bench.chaos_check import ProgressMonitor, settled, verdict
from bench.chaos_clients import Storefronts, plan
from bench.chaos_faults import Chaos
from bench.servers import PostgresServer, RedisServer

PROGRESS = 15.0   # seconds between two progress lines
SLACK = 10.0   # seconds on top of the bound: a sample's resolution, a pass's own run time, a loaded machine


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=10_000, help="orders sent (default 10,000: the full form)")
    p.add_argument("--duration", type=float, default=1800, help="seconds over which orders and faults are spread")
    p.add_argument("--faults", default=chaos_faults.DEFAULT_MIX,
                   help=f"fault mix: Kraty faults and process kills (default {chaos_faults.DEFAULT_MIX!r})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=3, help="python -m workers processes")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (4 threads each)")
    p.add_argument("--clients", type=int, default=8, help="storefront client threads")
    p.add_argument("--revoke-share", type=float, default=0.2)
    p.add_argument("--stripe-share", type=float, default=0.3)
    p.add_argument("--forged-share", type=float, default=0.02, help="Stripe events signed with a wrong secret")
    p.add_argument("--stale", type=float, default=120.0, help="KB_RECONCILE_STALE_SECONDS")
    p.add_argument("--interval", type=float, default=60.0, help="KB_RECONCILE_INTERVAL_SECONDS")
    p.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to wait for everything to settle")
    p.add_argument("--json", help="write the results here too (default bench/results/chaos.json)")
    args = p.parse_args(argv)
    args.mix = chaos_faults.parse_mix(args.faults, p.error)
    return args


def environment(args, pg: PostgresServer, redis: RedisServer, emulator: procs.Emulator, workdir: Path) -> dict:
    catalog = procs.write_catalog(workdir, emulator.url)
    backends = common.Backends(pg.url, redis.url, "PostgreSQL (own cluster)", "Redis (own server)")
    lease = min(60.0, args.stale / 2)
    return common.kb_env(backends, catalog, KB_STRIPE_API_BASE=f"{emulator.url}/stripe", KB_LOG_JSON="false",
                         KB_RECONCILE_STALE_SECONDS=str(args.stale), KB_RECONCILE_INTERVAL_SECONDS=str(args.interval),
                         KB_LEASE_SECONDS=str(lease), KB_RETRY_BASE_SECONDS="0.5",
                         KB_RETRY_MAX_DELAY_SECONDS=str(min(30.0, args.stale)), KB_KRATY_READ_TIMEOUT="5")


def wait_settled(monitor: ProgressMonitor, emulator: procs.Emulator, orders, timeout: float) -> float | None:
    """Seconds until nothing is left to do, or None after ``timeout``."""
    started = last_print = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if settled(orders, ledger(emulator), monitor.sample()):
                return time.monotonic() - started
        except (SQLAlchemyError, requests.RequestException):   # the database restarting under the last fault
            pass
        if time.monotonic() - last_print > PROGRESS:
            last_print = time.monotonic()
            print(f"  draining: {monitor.unfinished} unfinished, longest stall so far {monitor.longest:.0f} s",
                  flush=True)
        time.sleep(2)
    return None


def watch_sending(sending: threading.Thread, orders, monitor: ProgressMonitor, started: float) -> None:
    while sending.is_alive():
        sending.join(PROGRESS)
        answered = sum(o.accepted_at is not None for o in orders)
        print(f"  {time.monotonic() - started:6.1f} s  {answered}/{len(orders)} orders accepted, "
              f"{monitor.unfinished} unfinished in the ledger, longest stall so far {monitor.longest:.0f} s", flush=True)


def ledger(emulator: procs.Emulator) -> list[dict]:
    response = emulator.session.get(emulator.url + "/_emulator/ledger", timeout=60)
    response.raise_for_status()
    return response.json()["entries"]


def run(args) -> dict:
    rng = random.Random(args.seed)
    orders = plan(args.orders, args.seed, args.revoke_share, args.stripe_share, args.forged_share)
    with tempfile.TemporaryDirectory(prefix="kb-chaos-") as tmp:
        workdir = Path(tmp)
        pg = PostgresServer().init()
        redis = RedisServer(workdir / "redis").start()
        try:
            migrate.upgrade(pg.url)
            emulator = procs.Emulator(workdir)
            env = environment(args, pg, redis, emulator, workdir)
            web = procs.Gunicorn("app:create_app()", args.web_workers, "gthread", 4, env, workdir / "web.log",
                                 ready_path="/healthz")
            chaos = Chaos(args, env, workdir, redis, pg, web, rng)
            chaos.start_workers()
            emulator.session.put(emulator.url + "/_emulator/faults",
                                 json={"rules": chaos_faults.kraty_rules(args.mix)}).raise_for_status()
            monitor = ProgressMonitor(pg.url).start()
            clients = Storefronts(web.url, emulator.url, orders, args.clients, args.orders / args.duration)
            sending = threading.Thread(target=clients.run, name="storefronts", daemon=True)
            started = time.monotonic()
            print(f"chaos: {args.orders} orders over {args.duration:.0f} s, seed {args.seed}, {args.workers} workers, "
                  f"{args.web_workers} web workers; bound {args.stale:.0f} + {args.interval:.0f} s", flush=True)
            sending.start()
            threading.Thread(target=chaos.run_schedule, args=(args.duration, lambda: not sending.is_alive()),
                             name="chaos", daemon=True).start()
            watch_sending(sending, orders, monitor, started)
            sent_in = time.monotonic() - started
            drain = wait_settled(monitor, emulator, orders, args.drain_timeout)
            monitor.stop()
            result = summary(args, orders, ledger(emulator), monitor, chaos, clients, sent_in, drain)
            chaos.stop()
        finally:
            procs.stop_all()
            redis.stop()
            pg.remove()
    return result


def summary(args, orders, entries, monitor, chaos, clients, sent_in, drain) -> dict:
    checks = verdict(orders, entries)
    bound = args.stale + args.interval
    kinds = Counter(o.kind for o in orders)
    result = {
        "orders": len(orders), "by_kind": dict(kinds), "revoked": sum(o.revoked_at is not None for o in orders),
        "seed": args.seed, "duration_s": args.duration, "faults": args.faults, "workers": args.workers,
        "web_workers": args.web_workers, "kills": dict(chaos.done), "notes": chaos.notes,
        "checks": checks, "status_500": clients.status_500, "503_without_retry_after": clients.missing_retry_after,
        "stuck": monitor.unfinished, "sending_s": round(sent_in, 1),
        "drain_s": None if drain is None else round(drain, 1),
        "longest_stall_s": round(monitor.longest, 1), "longest_stall_of": monitor.longest_what,
        "bound_s": bound, "requests": sum(o.tries for o in orders),
    }
    result["passed"] = (not any(checks.values()) and drain is not None and not clients.status_500
                        and not clients.missing_retry_after and monitor.longest <= bound + SLACK)
    return result


def report(result: dict) -> str:
    kills = ", ".join(f"{kind} {n}" for kind, n in sorted(result["kills"].items())) or "none"
    checks = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in result["checks"].items())
    return "\n".join([
        f"orders {result['orders']} ({', '.join(f'{k} {n}' for k, n in result['by_kind'].items())}), "
        f"revoked {result['revoked']}, requests {result['requests']}",
        f"kills and restarts: {kills}",
        *[f"  note: {note}" for note in result["notes"]],
        f"checks: {checks}",
        f"HTTP 500 answers {result['status_500']}, 503 without Retry-After {result['503_without_retry_after']}, "
        f"stuck at the end {result['stuck']}",
        f"sending {result['sending_s']} s, drain {result['drain_s']} s after the last answer",
        f"longest stall {result['longest_stall_s']} s ({result['longest_stall_of']}); bound "
        f"{result['bound_s']:.0f} s (+{SLACK:.0f} s slack)",
        "PASSED" if result["passed"] else "FAILED"])


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(report(result), flush=True)
    path = Path(args.json) if args.json else common.save("chaos", result)
    if args.json:
        path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
