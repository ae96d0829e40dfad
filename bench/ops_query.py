"""Ops query: ``GET /v1/fulfilments`` on 1,000,000 orders in PostgreSQL, each documented filter's p95 for the
first page and for a page 10,000 rows deep, as a ratio to a primary-key lookup measured in the same run.

Target (issue 7): every filter's p95 under 20 ms and under 5x the primary-key lookup's p95.

Data. ``seed`` writes 1,000,000 fulfilments (``--quick``: 20,000) with their item rows and history rows
through ``COPY`` (psycopg 3; SQLite: executemany), secondary indexes dropped during the load and rebuilt
after, then ``VACUUM ANALYZE``. Distributions: 5 games (namespaces, 40/25/15/12/8 %), 4 stores
(google_play 45 %, app_store 35 %, stripe 12 %, accelbyte 8 %), states mostly FULFILLED (93 %; 2.5 %
FULFILL_FAILED, 2 % REVOKED, ...), 200,000 players with few orders each but a long tail (a player's share
falls as 1/sqrt(rank): the top player has ~2,000 orders), unique store transaction ids, 10 % sandbox,
``created_at`` uniform over 90 days (rows written in time order, as a live ledger's are); 1-3 lines per order over 11 SKUs per game, Zipf-like (gems_100 ~25 %
of orders, battle_pass ~4 %, a game's rarest skin ~0.1 %), bundles (starter_pack) as 3 item rows (every item row holding its
order's created_at, as the app writes them: the SKU filter pages through (sku, order_created_at, fulfilment_id)). The
full-size set lives in its own database, ``kb_bench_ops`` (``KB_BENCH_OPS_DATABASE_URL`` overrides), and a
marker row (seed version, rows, and a digest of the migrations) lets reruns skip the seeding; a changed
migration or generator reseeds. Quick runs seed the benchmark's usual (throwaway) database.

What is measured, each call timed alone, in-process:

- ``api``: the Flask app (``app.create_app``) through its test client: ``GET /v1/fulfilments?...`` with a
  viewer API key (key lookup, argument validation, cursor check, the query, JSON), against
  ``GET /v1/fulfilments/{id}`` (the order with its items, history, events and deliveries);
- ``query``: ``middleware.ops.queries.list_fulfilments`` in a fresh ``Services.read_session()`` (what the API and
  the console read in: autocommit on PostgreSQL), against ``session.get(Fulfilment, id)`` + ``ops.summary`` in a
  fresh one: the query's own cost.

The deep page is what a client gets: the ``nextCursor`` after paging through 10,000 rows 50 at a time with
the API (the query layer is given the same keyset). Filters with fewer matching rows (one player, one
transaction id) measure the deepest page they have, and the table says how deep it is. The primary-key
lookups, the player and the transaction id cases draw a different row (of 200) for each call; every case is
run once per round, the rounds in a fresh random order each, after warm-up rounds.

Then ``GET /v1/search`` per kind of id a customer quotes, and the home page's counts (bench/ops_search.py).

    python -m bench ops_query [--quick]
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, exists, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from middleware.ledger import api_keys

from middleware import ops
from middleware.api import cursors
from middleware.api.fulfilments import CURSOR_KIND
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry

from bench import common, ops_search
from bench.common import ROOT, BenchError, table

SEED_VERSION = 4   # 3: item rows carry their order's created_at; 4: store ids for search (bench/ops_search.py)
P95_MAX_MS = 20.0
RATIO_MAX = 5.0
FULL = {"rows": 1_000_000, "players": 200_000, "deep": 10_000, "samples": 200, "warmup": 20}
QUICK = {"rows": 20_000, "players": 4_000, "deep": 1_000, "samples": 5, "warmup": 1}
OPS_DATABASE = "kb_bench_ops"
PAGE = 50
POOL = 200
CHUNK = 20_000
DAYS = 90
END = datetime(2026, 11, 1, tzinfo=UTC)  # the newest order; data are fixed, not relative to today

NAMESPACES = (("atlas", 40), ("borealis", 25), ("cinder", 15), ("dune", 12), ("ember", 8))
SOURCES = (("google_play", 45), ("app_store", 35), ("stripe", 12), ("accelbyte", 8))
STATES = (("FULFILLED", 930), ("FULFILL_FAILED", 25), ("REVOKED", 20), ("RESOLVED", 10), ("REVOKE_FAILED", 5),
          ("FULFILLING", 5), ("RECEIVED", 5))
ITEM_STATE = {"FULFILLED": "GRANTED", "FULFILL_FAILED": "FAILED", "REVOKED": "REVOKED", "RESOLVED": "FAILED",
              "REVOKE_FAILED": "REVOKE_FAILED", "FULFILLING": "PENDING", "RECEIVED": "PENDING"}
# per game: (sku, weight, kind, target, amount); starter_pack is a bundle of three components
SKUS = (("gems_100", 30, "currency", "gems", 100), ("gems_500", 15, "currency", "gems", 500),
        ("gems_1200", 10, "currency", "gems", 1200), ("starter_pack", 8, None, None, 1),
        ("battle_pass", 6, "item", "battle_pass", 1), ("gems_2500", 5, "currency", "gems", 2500),
        ("gold_1000", 4, "currency", "gold", 1000), ("skin_1", 2, "item", "skin_1", 1),
        ("skin_2", 1, "item", "skin_2", 1), ("skin_3", 0.5, "item", "skin_3", 1),
        ("skin_4", 0.25, "item", "skin_4", 1))
BUNDLE = (("gems", "currency", 200), ("sword", "item", 1), ("shield", "item", 1))
PRICES = {"gems_100": "0.99", "gems_500": "4.99", "gems_1200": "9.99", "starter_pack": "2.99",
          "battle_pass": "9.99", "gems_2500": "19.99", "gold_1000": "1.99"}
RARE_SKU = f"{NAMESPACES[-1][0]}_skin_4"        # ~0.03 % of orders
LONG_TAIL_SKU = f"{NAMESPACES[0][0]}_skin_1"    # ~1 % of orders: where neither plan of an EXISTS is cheap

FCOLS = ("id", "namespace", "source", "transaction_id", "player_id", "environment", "state", "reason",
         "request_hash", "lines", "attempts", "reversal_seq", "version", "price", "currency", "created_at",
         "updated_at", "state_changed_at", "player_key")
ICOLS = ("fulfilment_id", "line_no", "component_no", "sku", "item_id", "item_type", "line_quantity",
         "component_sku", "component_quantity", "kind", "target", "amount", "revoked_amount", "state", "cycle",
         "idempotency_key", "kraty_entry_id", "updated_at", "order_created_at")
HCOLS = ("fulfilment_id", "at", "actor", "from_state", "to_state", "detail")


# ------------------------------------------------------------------------------------------------ the data
def _cum(pairs) -> tuple[list, list]:
    values, total, cum = [], 0.0, []
    for value, weight in pairs:
        total += weight
        values.append(value)
        cum.append(total)
    return values, cum


def sku_name(namespace: str, sku: str) -> str:
    return f"{namespace}_{sku}" if sku.startswith("skin_") else sku


def _txn(source: str, n: int, rng: random.Random) -> str:
    if source == "google_play":
        return f"GPA.{3300 + n % 97}-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}-{n:07d}"
    if source == "app_store":
        return str(2000000000000000 + n * 7919 % 10**15)
    if source == "stripe":
        return f"cs_live_{hashlib.sha1(str(n).encode()).hexdigest()[:24]}"
    return f"order-{n:08d}"


def generate(rows: int, players: int, start: int = 0, count: int | None = None, seed: int = 7):
    """Orders ``start`` .. ``start + count`` of the set, each as (fulfilment row, item rows, history rows),
    the JSON columns as Python values. Deterministic: each chunk has its own seeded generator."""
    rng = random.Random(f"{seed}:{start}")
    ns_values, ns_cum = _cum(NAMESPACES)
    src_values, src_cum = _cum(SOURCES)
    st_values, st_cum = _cum(STATES)
    sku_values, sku_cum = _cum((s, s[1]) for s in SKUS)
    span = DAYS * 86400.0
    for n in range(start, start + (rows - start if count is None else count)):
        namespace = rng.choices(ns_values, cum_weights=ns_cum)[0]
        source = rng.choices(src_values, cum_weights=src_cum)[0]
        state = rng.choices(st_values, cum_weights=st_cum)[0]
        player = f"p{int(players * rng.random() ** 2):06d}"
        sandbox = rng.random() < 0.10
        created = END - timedelta(seconds=span * (rows - n - rng.random()) / rows)   # inserted in time order
        updated = created + timedelta(milliseconds=rng.randrange(200, 5000))
        fid = f"{rng.getrandbits(128):032x}"
        nlines = rng.choices((1, 2, 3), cum_weights=(85, 97, 100))[0]
        lines, items = [], []
        for line_no in range(nlines):
            sku, _, kind, target, amount = rng.choices(sku_values, cum_weights=sku_cum)[0]
            sku = sku_name(namespace, sku)
            qty = 1 if rng.random() < 0.9 else 2
            lines.append({"itemSku": sku, "quantity": qty})
            components = BUNDLE if kind is None else ((target, kind, amount),)
            for comp_no, (ctarget, ckind, camount) in enumerate(components):
                istate = ITEM_STATE[state] if comp_no == len(components) - 1 or state != "FULFILL_FAILED" \
                    else "GRANTED"
                granted = istate in ("GRANTED", "REVOKED", "REVOKE_FAILED")
                items.append((fid, line_no, comp_no, sku, sku, "BUNDLE" if kind is None else "COINS", qty,
                              ctarget if kind is None else sku, camount * qty, ckind, ctarget, camount * qty,
                              camount * qty if istate == "REVOKED" else 0, istate, 0,
                              f"{source}:{n}:{line_no}:{comp_no}" if granted else None,
                              f"le_{n}_{line_no}_{comp_no}" if granted else None, updated, created))
        reason = {"FULFILL_FAILED": "kraty_refused: validation_failed", "RESOLVED": "resolved by ops",
                  "REVOKED": "refunded", "REVOKE_FAILED": "kraty_refused: insufficient_balance"}.get(state)
        price = PRICES.get(lines[0]["itemSku"], "3.99")
        txn = _txn(source, n, rng)
        f = (fid, namespace, source, txn, player, "sandbox" if sandbox else "production", state,
             reason, hashlib.sha256(json.dumps(lines).encode()).hexdigest(), lines, 1, 0, 2, price, "USD",
             created, updated, updated, ops_search.player_key(source, fid, txn))
        history = [(fid, created, "api", None, "RECEIVED", {"event": "received", "lines": nlines})]
        if state != "RECEIVED":
            history.append((fid, updated, "worker", "RECEIVED", state if state in ("FULFILLED", "FULFILL_FAILED",
                            "FULFILLING") else "FULFILLED", {"event": "attempt", "attempt": 1}))
        if state in ("REVOKED", "REVOKE_FAILED", "RESOLVED"):
            history.append((fid, updated, "worker", "FULFILLED", state, {"event": state.lower()}))
        yield f, items, history


def migrations_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _marker(engine) -> dict | None:
    with engine.connect() as conn:
        try:
            raw = conn.execute(text("SELECT value FROM bench_ops_seed WHERE key = 'seed'")).scalar()
        except SQLAlchemyError:   # no marker table: not seeded
            return None
    return json.loads(raw) if raw else None


def _load_postgres(engine, opts: dict) -> None:
    """COPY in chunks, the secondary indexes dropped during the load and rebuilt after, then VACUUM ANALYZE."""
    tables = ("fulfilments", "fulfilment_items", "fulfilment_history")
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
                        "AND indexname NOT IN (SELECT conname FROM pg_constraint)", (list(tables),))
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            cur.execute("SET session_replication_role = replica")  # the rows are consistent by construction
            for start in range(0, opts["rows"], CHUNK):
                batch = list(generate(opts["rows"], opts["players"], start, min(CHUNK, opts["rows"] - start)))
                with cur.copy(f"COPY fulfilments ({', '.join(FCOLS)}) FROM STDIN") as copy:
                    for f, _, _ in batch:
                        copy.write_row(f[:9] + (json.dumps(f[9]),) + f[10:])
                with cur.copy(f"COPY fulfilment_items ({', '.join(ICOLS)}) FROM STDIN") as copy:
                    for _, items, _ in batch:
                        for row in items:
                            copy.write_row(row)
                with cur.copy(f"COPY fulfilment_history ({', '.join(HCOLS)}) FROM STDIN") as copy:
                    for _, _, history in batch:
                        for row in history:
                            copy.write_row(row[:5] + (json.dumps(row[5]),))
            cur.execute("SET session_replication_role = origin")
            cur.execute("SET maintenance_work_mem = '256MB'")
            for _, definition in indexes:
                cur.execute(definition)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE fulfilments, fulfilment_items, fulfilment_history")
        conn.autocommit = False
    finally:
        raw.close()


def _load_sqlite(engine, opts: dict) -> None:
    with engine.begin() as conn:
        for start in range(0, opts["rows"], CHUNK):
            batch = list(generate(opts["rows"], opts["players"], start, min(CHUNK, opts["rows"] - start)))
            conn.execute(insert(Fulfilment.__table__), [dict(zip(FCOLS, f, strict=True)) for f, _, _ in batch])
            conn.execute(insert(FulfilmentItem.__table__),
                         [dict(zip(ICOLS, row, strict=True)) for _, items, _ in batch for row in items])
            conn.execute(insert(HistoryEntry.__table__),
                         [dict(zip(HCOLS, row, strict=True)) for _, _, history in batch for row in history])
        conn.execute(text("ANALYZE"))


def seed(database_url: str, opts: dict, quick: bool) -> dict:
    """The seeded set (seeding it unless the marker says it is there): the marker's contents."""
    engine = create_engine(database_url)
    try:
        wanted = {"version": SEED_VERSION, "rows": opts["rows"], "players": opts["players"],
                  "migrations": migrations_digest()}
        marker = _marker(engine)
        if marker is not None and {k: marker.get(k) for k in wanted} == wanted:
            print(f"seeded set found ({marker['rows']:,} orders, seeded in {marker['seconds']} s): not reseeding",
                  flush=True)
            return marker
        print(f"seeding {opts['rows']:,} orders ...", flush=True)
        t0 = time.perf_counter()
        common.reset_ledger(database_url)
        (_load_postgres if engine.dialect.name == "postgresql" else _load_sqlite)(engine, opts)
        with engine.begin() as conn:
            ops_search.add_store_ids(conn)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE payment_refs, reversals"))
        with engine.begin() as conn:
            counts = {"fulfilments": conn.execute(text("SELECT count(*) FROM fulfilments")).scalar(),
                      "fulfilment_items": conn.execute(text("SELECT count(*) FROM fulfilment_items")).scalar(),
                      "fulfilment_history": conn.execute(text("SELECT count(*) FROM fulfilment_history")).scalar()}
            top = conn.execute(text("SELECT player_id, count(*) FROM fulfilments GROUP BY player_id "
                                    "ORDER BY count(*) DESC, player_id LIMIT 1")).one()
            marker = {**wanted, "seconds": round(time.perf_counter() - t0, 1), "counts": counts,
                      "top_player": top[0], "top_player_orders": top[1]}
            conn.execute(text("CREATE TABLE bench_ops_seed (key VARCHAR(16) PRIMARY KEY, value TEXT NOT NULL)"))
            conn.execute(text("INSERT INTO bench_ops_seed VALUES ('seed', :v)"), {"v": json.dumps(marker)})
        print(f"seeded in {marker['seconds']} s: {counts}", flush=True)
        return marker
    finally:
        engine.dispose()


def write_catalog(workdir: Path) -> str:
    """The seeded games, each with its SKUs (the API checks a namespace filter against the catalog)."""
    out = []
    for namespace, _ in NAMESPACES:
        out += [f"[games.{namespace}]", 'kraty_base_url = "http://127.0.0.1:8100"',
                f'server_key = "kraty_sk_{namespace}"', "allow_sandbox = true", ""]
        for sku, _, kind, target, amount in SKUS:
            name = sku_name(namespace, sku)
            if kind is None:
                kind_name, grants = "BUNDLE", ('{ currency = "gems", amount = 200 }, { item = "sword", quantity = 1 }, '
                                               '{ item = "shield", quantity = 1 }')
            elif kind == "currency":
                kind_name, grants = "COINS", f'{{ currency = "{target}", amount = {amount} }}'
            else:
                kind_name, grants = "INGAMEITEM", f'{{ item = "{sku_name(namespace, target)}", quantity = 1 }}'
            out += [f"[games.{namespace}.products.{name}]", f'type = "{kind_name}"', f'name = "{name}"',
                    f"grants = [{grants}]", ""]
    # game demo (no orders) too: the example storefronts file, which the app loads, names it
    out += ["[games.demo]", 'kraty_base_url = "http://127.0.0.1:8100"', 'server_key = "kraty_sk_demo"', "",
            "[games.demo.products.gems_100]", 'type = "COINS"', 'name = "100 Gems"',
            'grants = [{ currency = "gems", amount = 100 }]', ""]
    path = workdir / "ops-catalog.toml"
    path.write_text("\n".join(out))
    return str(path)


# ------------------------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    name: str
    variants: list[dict]                     # API query parameters; one per call, in turn
    matching: int | None = None              # rows matching the first variant
    deep_cursor: str | None = None           # the client's cursor of the deep page (first variant)
    deep_after: tuple | None = None          # the same keyset, for the query layer
    deep_rows: int = 0                       # rows before the deep page
    note: str = ""
    samples: dict = field(default_factory=dict)  # (layer, depth) -> [ms]


PARAM_FIELDS = {"namespace": "namespace", "source": "source", "state": "state", "playerId": "player_id",
                "transactionId": "transaction_id", "sku": "sku", "environment": "environment",
                "createdAfter": "created_after", "createdBefore": "created_before"}


def to_query(params: dict) -> ops.FulfilmentQuery:
    values = {PARAM_FIELDS[k]: (datetime.fromisoformat(v) if k.startswith("created") else v)
              for k, v in params.items()}
    return ops.FulfilmentQuery(**values)


def _count(session, q: ops.FulfilmentQuery) -> int:
    f = Fulfilment
    stmt = select(func.count()).select_from(f)
    for column, value in ((f.namespace, q.namespace), (f.source, q.source), (f.state, q.state),
                          (f.player_id, q.player_id), (f.transaction_id, q.transaction_id),
                          (f.environment, q.environment)):
        if value is not None:
            stmt = stmt.where(column == value)
    if q.sku is not None:
        stmt = stmt.where(exists().where(FulfilmentItem.fulfilment_id == f.id, FulfilmentItem.sku == q.sku))
    if q.created_after is not None:
        stmt = stmt.where(f.created_at >= q.created_after)
    if q.created_before is not None:
        stmt = stmt.where(f.created_at < q.created_before)
    return session.scalar(stmt)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def build_cases(svc, marker: dict) -> tuple[list[Case], list[str]]:
    """The cases (one per documented filter, a few values where selectivity matters, two combinations) and
    the pool of primary keys."""
    with svc.session() as session:
        probe = f"{random.Random(3).getrandbits(128):032x}"
        sample = session.execute(select(Fulfilment.id, Fulfilment.player_id, Fulfilment.transaction_id)
                                 .where(Fulfilment.id > probe).order_by(Fulfilment.id).limit(POOL)).all()
        if len(sample) < POOL:
            sample += session.execute(select(Fulfilment.id, Fulfilment.player_id, Fulfilment.transaction_id)
                                      .order_by(Fulfilment.id).limit(POOL - len(sample))).all()
    ids = [row[0] for row in sample]
    week = (_iso(END - timedelta(days=30)), _iso(END - timedelta(days=23)))
    smallest = NAMESPACES[-1][0]
    cases = [
        Case("no filter", [{}]),
        Case(f"namespace={smallest} (8 %)", [{"namespace": smallest}]),
        Case("source=accelbyte (8 %)", [{"source": "accelbyte"}]),
        Case("state=FULFILL_FAILED (2.5 %)", [{"state": "FULFILL_FAILED"}]),
        Case("playerId (a typical player)", [{"playerId": row[1]} for row in sample]),
        Case("playerId (the top player)", [{"playerId": marker["top_player"]}]),
        Case("transactionId", [{"transactionId": row[2]} for row in sample]),
        Case("sku=gems_100 (common)", [{"sku": "gems_100"}]),
        Case("sku=battle_pass (mid)", [{"sku": "battle_pass"}]),
        Case(f"sku={LONG_TAIL_SKU} (long tail)", [{"sku": LONG_TAIL_SKU}]),
        Case(f"sku={RARE_SKU} (rare)", [{"sku": RARE_SKU}]),
        Case("environment=sandbox (10 %)", [{"environment": "sandbox"}]),
        Case("createdAfter+Before (7 days)", [{"createdAfter": week[0], "createdBefore": week[1]}]),
        Case(f"namespace={smallest} + 7 days", [{"namespace": smallest, "createdAfter": week[0],
                                                  "createdBefore": week[1]}]),
        Case(f"namespace={smallest} + FULFILL_FAILED", [{"namespace": smallest, "state": "FULFILL_FAILED"}]),
    ]
    with svc.session() as session:
        for case in cases:
            case.matching = _count(session, to_query(case.variants[0]))
    return cases, ids


def find_deep_pages(client, headers: dict, svc, cases: list[Case], deep: int) -> None:
    """Page through each case with the API, 50 rows at a time, as a client does; keep the cursor of the page
    that starts ``deep`` rows in (or of the last page when there are fewer rows)."""
    secret = cursors.secrets_from(svc)
    for case in cases:
        params, cursor, seen, last_cursor, last_seen = case.variants[0], None, 0, None, 0
        while seen < deep:
            response = client.get("/v1/fulfilments", query_string={**params, "limit": PAGE,
                                                                   **({"cursor": cursor} if cursor else {})},
                                  headers=headers)
            if response.status_code != 200:
                raise BenchError(f"ops_query {case.name}: {response.status_code} {response.get_data(True)[:300]}")
            body = response.get_json()
            last_cursor, last_seen = cursor, seen
            seen += len(body["items"])
            cursor = body["nextCursor"]
            if cursor is None:
                break
        if cursor is not None:
            case.deep_cursor, case.deep_rows = cursor, seen
        elif last_cursor is not None:   # fewer rows than ``deep``: the deepest page there is
            case.deep_cursor, case.deep_rows = last_cursor, last_seen
            case.note = f"{seen:,} rows: deep = the last page"
        else:
            case.note = f"{seen} rows: one page"
        if case.deep_cursor is not None:
            key = cursors.decode(secret, CURSOR_KIND, to_query(params).as_filters(), case.deep_cursor)
            case.deep_after = (datetime.fromisoformat(key[0]), str(key[1]))


def check_deep_pages(client, headers: dict, svc, actor: ops.Actor, cases: list[Case]) -> list[str]:
    """The query layer given the keyset answers the same rows as the API given the cursor; the unfiltered deep
    page starts at the row an OFFSET query names."""
    problems = []
    for case in cases:
        if case.deep_cursor is None:
            continue
        params = case.variants[0]
        api = client.get("/v1/fulfilments", query_string={**params, "limit": PAGE, "cursor": case.deep_cursor},
                         headers=headers).get_json()["items"]
        with svc.session() as session:
            rows, _ = ops.list_fulfilments(session, actor, to_query(params), PAGE, case.deep_after)
            if not params:
                expected = session.scalars(select(Fulfilment.id).order_by(Fulfilment.created_at.desc(),
                                                                         Fulfilment.id.desc())
                                           .offset(case.deep_rows).limit(PAGE)).all()
                if [r["id"] for r in rows] != list(expected):
                    problems.append(f"{case.name}: the deep page is not rows {case.deep_rows + 1}.. of the list")
        if [r["id"] for r in api] != [r["id"] for r in rows] or not rows:
            problems.append(f"{case.name}: the API and the query layer answer different deep pages")
    return problems


# ------------------------------------------------------------------------------------------------ measuring
def p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)


def measure(client, headers: dict, svc, actor: ops.Actor, cases: list[Case], ids: list[str], opts: dict) -> dict:
    """Every (case, depth, layer) and the two primary-key lookups once per round, rounds in random order."""
    pk: dict[str, list[float]] = {"api": [], "query": []}
    calls = []
    for case in cases:
        for depth in ("first", "deep"):
            if depth == "deep" and case.deep_cursor is None:
                continue
            for layer in ("api", "query"):
                case.samples[(layer, depth)] = []
                calls.append((case, depth, layer))
    calls += [(None, "pk", "api"), (None, "pk", "query")]
    rng = random.Random(11)
    clock = time.perf_counter

    def call(case: Case | None, depth: str, layer: str, n: int) -> float:
        if case is None:
            fid = ids[n % len(ids)]
            if layer == "api":
                t0 = clock()
                response = client.get(f"/v1/fulfilments/{fid}", headers=headers)
                took = clock() - t0
                if response.status_code != 200:
                    raise BenchError(f"ops_query: GET /v1/fulfilments/{fid}: {response.status_code}")
            else:
                t0 = clock()
                with svc.read_session() as session:
                    ops.summary(session.get(Fulfilment, fid))
                took = clock() - t0
            return took * 1000
        params = case.variants[n % len(case.variants)]
        if layer == "api":
            query = {**params, "limit": PAGE}
            if depth == "deep":
                query["cursor"] = case.deep_cursor
            t0 = clock()
            response = client.get("/v1/fulfilments", query_string=query, headers=headers)
            took = clock() - t0
            if response.status_code != 200:
                raise BenchError(f"ops_query {case.name}: {response.status_code} {response.get_data(True)[:300]}")
        else:
            q = to_query(params)
            t0 = clock()
            with svc.read_session() as session:
                ops.list_fulfilments(session, actor, q, PAGE, case.deep_after if depth == "deep" else None)
            took = clock() - t0
        return took * 1000

    rounds = opts["warmup"] + opts["samples"]
    t0 = time.perf_counter()
    for n in range(rounds):
        rng.shuffle(calls)
        for case, depth, layer in calls:
            ms = call(case, depth, layer, n)
            if n >= opts["warmup"]:
                (pk[layer] if case is None else case.samples[(layer, depth)]).append(ms)
        if n == opts["warmup"] - 1 or (n + 1) % 50 == 0:
            print(f"  round {n + 1}/{rounds} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return pk


def _verdict(p95: float | None, pk95: float) -> bool | None:
    if p95 is None:
        return None
    return p95 < P95_MAX_MS and p95 < RATIO_MAX * pk95


def report(backends_desc: str, marker: dict, opts: dict, quick: bool, cases: list[Case], pk: dict,
           problems: list[str], started: float, search: dict | None = None) -> dict:
    layers = {}
    meets = not problems
    for layer in ("api", "query"):
        pk95 = p(pk[layer], 0.95)
        rows_out, table_rows = [], []
        for case in cases:
            first, deep = case.samples[(layer, "first")], case.samples.get((layer, "deep"), [])
            f95, d95 = p(first, 0.95), p(deep, 0.95)
            ok = all(v is not False for v in (_verdict(f95, pk95), _verdict(d95, pk95)))
            meets = meets and ok
            rows_out.append({"filter": case.name, "params": case.variants[0] if len(case.variants) == 1 else
                             f"{len(case.variants)} values, one per call", "matching_rows": case.matching,
                             "first": {"p50_ms": p(first, 0.5), "p95_ms": f95, "samples": len(first)},
                             "deep": {"rows_before": case.deep_rows, "p50_ms": p(deep, 0.5), "p95_ms": d95,
                                      "samples": len(deep)} if deep else None,
                             "ratio_first": round(f95 / pk95, 2) if pk95 else None,
                             "ratio_deep": round(d95 / pk95, 2) if pk95 and d95 is not None else None,
                             "note": case.note, "meets": ok})
            table_rows.append([case.name, case.matching, f95, d95, case.deep_rows if deep else None,
                               rows_out[-1]["ratio_first"], rows_out[-1]["ratio_deep"],
                               "meets target" if ok else "MISSES target"])
        layers[layer] = {"pk": {"p50_ms": p(pk[layer], 0.5), "p95_ms": pk95, "samples": len(pk[layer])},
                         "cases": rows_out}
        what = ("GET /v1/fulfilments through the Flask app (test client) vs GET /v1/fulfilments/{id}"
                if layer == "api" else "ops.list_fulfilments in a fresh read session vs session.get(Fulfilment, id)")
        print(f"\n[{layer}] {what}: primary-key lookup p50 {p(pk[layer], 0.5)} ms, p95 {pk95} ms")
        print(table(["filter", "rows", "first p95 ms", "deep p95 ms", "deep at row", "first/PK", "deep/PK",
                     "verdict"], table_rows))
        for case in cases:
            if case.note:
                print(f"  {case.name}: {case.note}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"target: every p95 < {P95_MAX_MS:g} ms and < {RATIO_MAX:g}x the primary-key lookup's p95 (both layers): "
          f"{'meets target' if meets else 'MISSES target'}")
    summary = {"benchmark": "ops_query", "quick": quick, "backends": backends_desc, "target":
               {"p95_ms_max": P95_MAX_MS, "ratio_to_pk_max": RATIO_MAX}, "seed": marker,
               "page": PAGE, "deep_rows": opts["deep"], "samples": opts["samples"], "warmup_rounds": opts["warmup"],
               "layers": layers, "search": search, "problems": problems,
               "meets_target": meets and (search is None or search["meets_target"]), "load_average": common.load_average(),
               "seconds": round(time.perf_counter() - started, 1)}
    print(f"saved {common.save('ops_query', summary)}")
    return summary


def database_url(backends: common.Backends, quick: bool) -> tuple[str, str]:
    import os
    if quick:
        return backends.database_url, backends.database
    url = os.environ.get("KB_BENCH_OPS_DATABASE_URL")
    if url:
        return url, "PostgreSQL (from KB_BENCH_OPS_DATABASE_URL)"
    url = common._postgres_database(OPS_DATABASE, drop_at_close=False, cleanup=[])
    if url is None:
        raise BenchError("ops_query needs PostgreSQL on 127.0.0.1:5432 (or KB_BENCH_OPS_DATABASE_URL) for the "
                         "full run; --quick runs on SQLite")
    return url, f"PostgreSQL ({OPS_DATABASE})"


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    from app import create_app
    opts = QUICK if quick else FULL
    started = time.perf_counter()
    url, described = database_url(backends, quick)
    print(f"\nOPS_QUERY  GET /v1/fulfilments on {opts['rows']:,} orders: p95 of the first page and of a page "
          f"{opts['deep']:,} rows deep vs a primary-key lookup  [{described}]", flush=True)
    marker = seed(url, opts, quick)
    app = create_app({"database_url": url, "redis_url": backends.redis_url, "catalog_path": write_catalog(workdir),
                      "log_level": "WARNING"})
    svc = app.extensions["kraty_bridge"]
    try:
        with svc.session() as session:
            token = api_keys.create(session, f"bench-viewer-{int(time.time())}", "viewer")
            session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        actor = ops.Actor("key:bench-viewer", "viewer")
        client = app.test_client()
        cases, ids = build_cases(svc, marker)
        find_deep_pages(client, headers, svc, cases, opts["deep"])
        problems = check_deep_pages(client, headers, svc, actor, cases)
        print(f"measuring {len(cases)} filters x (first, deep) x (api, query) + 2 primary-key lookups, "
              f"{opts['warmup']} warm-up + {opts['samples']} rounds ...", flush=True)
        pk = measure(client, headers, svc, actor, cases, ids, opts)
        week = (_iso(END - timedelta(days=30)), _iso(END - timedelta(days=23)))
        search_cases = ops_search.build_cases(svc, week)
        print(f"measuring search: {len(search_cases)} kinds x (api, query) + the home counts ...", flush=True)
        search_samples = ops_search.measure(client, headers, svc, actor, search_cases, opts["samples"], opts["warmup"])
        with svc.session() as session:   # leave no benchmark keys behind in the kept database
            session.execute(text("DELETE FROM api_keys WHERE name LIKE 'bench-viewer-%'"))
            session.commit()
    finally:
        svc.close()
    return report(f"{described} + {backends.redis}", marker, opts, quick, cases, pk, problems, started,
                  ops_search.report(search_samples, p))
