"""Ops search on the ops_query ledger: ``GET /v1/search`` (and ``ops.search.search``) for each kind of id a
customer or a store quotes, and the console home page's counts; p95 per kind (target: under 20 ms).

The ops_query set is given the store ids a live ledger holds beside its orders (``add_store_ids``, run by
ops_query's seeding): every App Store order an ``originalTransactionId`` and every Google Play order a purchase
token (``player_key``); every Stripe order a PaymentIntent and a charge (``payment_refs``); every revoked
Stripe order a refund ``re_…`` and one in ten a dispute ``dp_…`` (``reversals.store_ref``). Each kind is
searched with a different id of 200 per call (drawn from the set), the player prefix cases with fixed
prefixes: ``p0001`` (10 players' ids start so) and ``p0`` (tens of thousands: the first 20 are listed).
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from sqlalchemy import select, text

from middleware.ledger.models import Fulfilment, PaymentRef, Reversal, utcnow
from middleware.ops import needs
from middleware.ops import search as ops_search

from bench.common import BenchError, table

POOL = 200
P95_MAX_MS = 20.0


def add_store_ids(conn) -> None:
    """The store ids kept beside the orders (payment refs, refunds, disputes), derived from each order's id
    (deterministic on both backends); the orders' own ``player_key`` comes with them (``player_key``)."""
    conn.execute(text("INSERT INTO payment_refs (source, ref, fulfilment_id, created_at) "
                      "SELECT 'stripe', 'pi_3' || substr(id, 1, 24), id, created_at FROM fulfilments "
                      "WHERE source = 'stripe'"))
    conn.execute(text("INSERT INTO payment_refs (source, ref, fulfilment_id, created_at) "
                      "SELECT 'stripe', 'ch_3' || substr(id, 1, 24), id, created_at FROM fulfilments "
                      "WHERE source = 'stripe'"))
    conn.execute(text("INSERT INTO reversals (source, reversal_key, ref, kind, amount, total, currency, state, "
                      "store_ref, fulfilment_id, created_at) "
                      "SELECT 'stripe', 'refund:re_3' || substr(id, 1, 24) || '\\:taken', 'pi_3' || substr(id, 1, 24), "
                      "'refund', 99, 99, 'USD', 'applied', 're_3' || substr(id, 1, 24), id, updated_at "
                      "FROM fulfilments WHERE source = 'stripe' AND state = 'REVOKED'"))
    conn.execute(text("INSERT INTO reversals (source, reversal_key, ref, kind, amount, total, currency, state, "
                      "store_ref, fulfilment_id, created_at) "
                      "SELECT 'stripe', 'dispute:dp_1' || substr(id, 1, 24) || '\\:lost', 'pi_3' || substr(id, 1, 24), "
                      "'dispute_lost', 99, 99, 'USD', 'applied', 'dp_1' || substr(id, 1, 24), id, updated_at "
                      "FROM fulfilments WHERE source = 'stripe' AND state = 'REVOKED' AND id < '2'"))


def player_key(source: str, fid: str, transaction_id: str) -> str | None:
    """An App Store order's originalTransactionId, a Google Play order's purchase token (else None)."""
    if source == "app_store":
        return f"1000{transaction_id[4:]}"
    if source == "google_play":
        return f"tok{fid}AO-J1Oz"
    return None


def _pool(session, stmt) -> list:
    rows = list(session.scalars(stmt.limit(POOL)))
    if not rows:
        raise BenchError(f"ops_search: no ids for {stmt}")
    return rows


def build_cases(svc, week: tuple[str, str]) -> list[tuple[str, list[dict]]]:
    """(kind, one query per call) for every kind of id, and combinations with state and time."""
    f = Fulfilment
    probe = f"{random.Random(5).getrandbits(128):032x}"
    with svc.session() as session:
        after = (f.id > probe)
        by = {
            "order id": _pool(session, select(f.id).where(after).order_by(f.id)),
            "Checkout Session cs_ (transaction id)": _pool(session, select(f.transaction_id).where(
                after, f.source == "stripe").order_by(f.id)),
            "PaymentIntent pi_": _pool(session, select(PaymentRef.ref).where(PaymentRef.ref.like("pi\\_%"))
                                       .order_by(PaymentRef.id)),
            "charge ch_": _pool(session, select(PaymentRef.ref).where(PaymentRef.ref.like("ch\\_%"))
                                .order_by(PaymentRef.id)),
            "refund re_": _pool(session, select(Reversal.store_ref).where(Reversal.store_ref.like("re\\_%"))
                                .order_by(Reversal.id)),
            "dispute dp_": _pool(session, select(Reversal.store_ref).where(Reversal.store_ref.like("dp\\_%"))
                                 .order_by(Reversal.id)),
            "Google order id GPA.": _pool(session, select(f.transaction_id).where(
                after, f.source == "google_play").order_by(f.id)),
            "Google purchase token": _pool(session, select(f.player_key).where(
                after, f.source == "google_play").order_by(f.id)),
            "Apple transactionId": _pool(session, select(f.transaction_id).where(
                after, f.source == "app_store").order_by(f.id)),
            "Apple originalTransactionId": _pool(session, select(f.player_key).where(
                after, f.source == "app_store").order_by(f.id)),
            "storefront transaction id": _pool(session, select(f.transaction_id).where(
                after, f.source == "accelbyte").order_by(f.id)),
            "player id (exact)": _pool(session, select(f.player_id).where(after).order_by(f.id)),
        }
    cases = [(kind, [{"q": value} for value in values]) for kind, values in by.items()]
    cases += [("player prefix p0001 (10 players)", [{"q": "p0001"}]),
              ("player prefix p0 (tens of thousands)", [{"q": "p0"}]),
              ("player id + FULFILL_FAILED", [{"q": v, "state": "FULFILL_FAILED"} for v in by["player id (exact)"]]),
              ("player id + 7 days", [{"q": v, "createdAfter": week[0], "createdBefore": week[1]}
                                      for v in by["player id (exact)"]]),
              ("no match (unknown id)", [{"q": f"pi_unknown{n}"} for n in range(POOL)])]
    return cases


def measure(client, headers: dict, svc, actor, cases, samples: int, warmup: int) -> dict:
    """Each case's API and query-layer timings, one call per case per round (rounds in random order), and the
    home page's counts (query layer)."""
    out = {(kind, layer): [] for kind, _ in cases for layer in ("api", "query")}
    out[("home counts", "query")] = []
    rng = random.Random(13)
    calls = [(kind, variants, layer) for kind, variants in cases for layer in ("api", "query")]
    calls.append(("home counts", None, "query"))
    clock = time.perf_counter
    for n in range(warmup + samples):
        rng.shuffle(calls)
        for kind, variants, layer in calls:
            if variants is None:
                t0 = clock()
                with svc.read_session() as session:
                    needs.counts(session, actor, utcnow() - timedelta(minutes=15))
                took = clock() - t0
            else:
                params = variants[n % len(variants)]
                if layer == "api":
                    t0 = clock()
                    response = client.get("/v1/search", query_string=params, headers=headers)
                    took = clock() - t0
                    if response.status_code != 200:
                        raise BenchError(f"ops_search {kind}: {response.status_code} {response.get_data(True)[:300]}")
                    if not kind.startswith("no match") and not response.get_json()["orders"] \
                            and not response.get_json()["players"]:
                        raise BenchError(f"ops_search {kind}: {params} found nothing")
                else:
                    query = ops_search.SearchQuery(q=params["q"], state=params.get("state"),
                                                   created_after=_time(params.get("createdAfter")),
                                                   created_before=_time(params.get("createdBefore")))
                    t0 = clock()
                    with svc.read_session() as session:
                        ops_search.search(session, actor, query)
                    took = clock() - t0
            if n >= warmup:
                out[(kind, layer)].append(took * 1000)
    return out


def _time(value):
    return datetime.fromisoformat(value) if value else None


def report(samples: dict, p) -> dict:
    rows, result, meets = [], [], True
    kinds = list(dict.fromkeys(kind for kind, _ in samples))
    for kind in kinds:
        api, query = samples.get((kind, "api"), []), samples[(kind, "query")]
        a95, q95 = p(api, 0.95), p(query, 0.95)
        ok = all(v is None or v < P95_MAX_MS for v in (a95, q95))
        meets = meets and ok
        rows.append([kind, p(api, 0.5), a95, p(query, 0.5), q95, "meets target" if ok else "MISSES target"])
        result.append({"kind": kind, "api": {"p50_ms": p(api, 0.5), "p95_ms": a95, "samples": len(api)},
                       "query": {"p50_ms": p(query, 0.5), "p95_ms": q95, "samples": len(query)}, "meets": ok})
    print("\n[search] GET /v1/search (api) and ops.search.search (query), per kind of id")
    print(table(["kind", "api p50 ms", "api p95 ms", "query p50 ms", "query p95 ms", "verdict"], rows))
    print(f"search target: every p95 < {P95_MAX_MS:g} ms: {'meets target' if meets else 'MISSES target'}")
    return {"kinds": result, "meets_target": meets}
