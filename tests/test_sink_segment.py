"""The segment sink: its config, the translation of every event type into Segment calls (golden dicts), and
delivery in batches to a Segment-like receiver on loopback (tests/support/segment_receiver.py) that checks the write key
and Segment's size limits: batch size and byte limits, failures on each delivery's own schedule (controllable
clock), Retry-After, 410, 400, the rate limit per request, player.deleted as a deletion regulation, replay,
and sandbox events dropped by default."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, UTC

import pytest
from sqlalchemy import update

from config.sinks import DEFAULT_REGULATIONS_URL, DEFAULT_SCHEDULE, Sink, Sinks, load_sinks
from middleware.ledger.models import Delivery, SinkState
from middleware.sinks import emit, enqueue_new, ratelimit, segment
from middleware.sinks.delivery import deliver_now

from tests.support.orders_flow import drain
from tests.support.segment_receiver import SegmentServer
from tests.test_sinks_config import problems, write

WRITE_KEY, TOKEN = "wk_test_1", "sgp_test_token"
HTTP_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
LIBRARY = {"library": {"name": "kraty-bridge", "version": "1"}}


@pytest.fixture
def server():
    served = SegmentServer(WRITE_KEY, TOKEN)
    yield served
    served.stop()


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_TEST_SEGMENT_TOKEN", TOKEN)
    path = tmp_path / "sinks.toml"
    path.write_text(f"""
[sinks.seg]
type = "segment"
url = "{server.batch_url}"
write_key = "{WRITE_KEY}"
regulations_url = "{server.regulations_url}"
regulations_token_env = "KB_TEST_SEGMENT_TOKEN"
timeout = 0.5
""")
    return {**settings_overrides, "sinks_path": str(path)}


def only_segment(services, server, **fields) -> Sink:
    sink = Sink(**{"name": "seg", "type": "segment", "url": server.batch_url, "write_key": WRITE_KEY,
                   "regulations_url": server.regulations_url, "regulations_token": TOKEN, "timeout": 0.5, **fields})
    services.sinks = Sinks([sink])
    return sink


def record(services, type="wallet.changed", player="p-1", payload=None, environment="production",
           enqueue=False) -> str | None:
    with services.session() as session:
        ids = emit(session, type, "demo", player, environment, T0, payload if payload is not None else
                   {"source": "kraty", "id": f"wh-{type}", "type": type, "data": {"delta": 5}}, sinks=services.sinks)
        session.commit()
    if enqueue:
        enqueue_new(services.jobs, ids)
    return ids[0] if ids else None


def delivery(services, delivery_id) -> Delivery:
    with services.session() as session:
        d = session.get(Delivery, delivery_id)
        session.expunge(d)
        return d


# ---------------------------------------------------------------- config
def test_a_segment_sink_and_its_defaults(tmp_path):
    sink = load_sinks(write(tmp_path, '[sinks.s]\ntype = "segment"\nwrite_key = "wk_secret"\n'
                                      'events = ["purchase.*"]\n')).get("s")
    assert sink == Sink(name="s", type="segment", url="https://api.segment.io/v1/batch", write_key="wk_secret",
                        events=("purchase.*",))
    assert sink.batch_size == 100 and sink.regulations_url == DEFAULT_REGULATIONS_URL
    assert sink.environments == {"production"} and sink.schedule == DEFAULT_SCHEDULE and sink.timeout == 15
    assert "wk_secret" not in repr(sink)


def test_segment_config_problems(tmp_path, monkeypatch):
    head = '[sinks.s]\ntype = "segment"\nevents = ["wallet.*"]\n'
    one_key = ("sinks.s", "exactly one of write_key or write_key_env is required")
    assert one_key in problems(tmp_path, head)
    monkeypatch.setenv("KB_WK", "from-env")
    assert one_key in problems(tmp_path, head + 'write_key = "a"\nwrite_key_env = "KB_WK"\n')
    assert load_sinks(write(tmp_path, head + 'write_key_env = "KB_WK"\n')).get("s").write_key == "from-env"
    assert problems(tmp_path, head + 'write_key_env = "KB_NOT_SET"\n') == [
        ("sinks.s.write_key_env", "environment variable KB_NOT_SET is not set")]
    found = problems(tmp_path, head + f'write_key = "a"\nsecret = "{HTTP_SECRET}"\nheaders = {{ "X-A" = "b" }}\n')
    assert {path for path, _ in found} == {"sinks.s.secret", "sinks.s.headers"}
    assert all("for http sinks only" in message for _, message in found) and HTTP_SECRET not in str(found)
    for bad in ("0", "501", '"10"', "true", "2.5"):
        assert [p for p, _ in problems(tmp_path, head + f'write_key = "a"\nbatch_size = {bad}\n')] == [
            "sinks.s.batch_size"], bad
    assert [p for p, _ in problems(tmp_path, head + 'write_key = "a"\nregulations_url = "ftp://x"\n')] == [
        "sinks.s.regulations_url"]
    http = problems(tmp_path, f'[sinks.h]\nurl = "http://x"\nsecret = "{HTTP_SECRET}"\nwrite_key = "a"\nbatch_size = 5\n')
    assert set(http) == {("sinks.h.write_key", "is for segment sinks only"),
                         ("sinks.h.batch_size", "is for segment sinks only")}


def test_a_segment_sink_taking_player_deleted_needs_a_regulations_token(tmp_path, monkeypatch):
    for events in ("", 'events = ["*"]\n', 'events = ["player.*", "purchase.*"]\n'):
        [(path, message)] = problems(tmp_path, f'[sinks.s]\ntype = "segment"\nwrite_key = "a"\n{events}')
        assert path == "sinks.s" and "\n" not in message
        assert "set regulations_token_env" in message and "leave player.deleted out of events" in message
    text = '[sinks.s]\ntype = "segment"\nwrite_key = "a"\nregulations_token_env = "KB_SEG_TOKEN"\n'
    assert problems(tmp_path, text) == [("sinks.s.regulations_token_env",
                                         "environment variable KB_SEG_TOKEN is not set")]
    monkeypatch.setenv("KB_SEG_TOKEN", "sgp_abc")
    sink = load_sinks(write(tmp_path, text)).get("s")
    assert sink.regulations_token == "sgp_abc" and "sgp_abc" not in repr(sink)


# ---------------------------------------------------------------- translation (golden dicts)
def env(type, data, player="p-1", seq=3) -> dict:
    return {"id": "evt_1", "type": type, "timestamp": "2026-11-21T10:00:00.000Z", "namespace": "demo",
            "environment": "production", "playerId": player, "playerSequence": seq, "data": data}


def purchase(**extra) -> dict:
    return {"fulfilmentId": "f-1", "store": "stripe", "environment": "production", "transactionId": "cs_1",
            "playerId": "p-1", "state": "FULFILLED", "reason": None, "price": "4.99", "currency": "USD",
            "products": [{"sku": "gems_100", "itemId": "gems", "quantity": 2}], **extra}


BOOKKEEPING = {"namespace": "demo", "environment": "production", "player_sequence": 3, "event_id": "evt_1"}
ORDER = {"order_id": "cs_1", "affiliation": "stripe", "store": "stripe", "fulfilment_id": "f-1", "currency": "USD",
         "products": [{"product_id": "gems_100", "sku": "gems_100", "quantity": 2, "item_id": "gems"}]}


def track(event, properties, message_id="evt_1", **who) -> dict:
    return {"type": "track", "messageId": message_id, "timestamp": "2026-11-21T10:00:00.000Z",
            **(who or {"userId": "p-1"}), "context": LIBRARY, "event": event, "properties": properties}


def test_fulfilled_is_identify_and_order_completed():
    assert segment.messages(env("purchase.fulfilled", purchase())) == [
        {"type": "identify", "messageId": "evt_1:identify", "timestamp": "2026-11-21T10:00:00.000Z",
         "userId": "p-1", "context": LIBRARY, "traits": {"namespace": "demo"}},
        track("Order Completed", {**ORDER, "total": 4.99, "revenue": 4.99, **BOOKKEEPING})]
    regranted = segment.messages(env("purchase.regranted", purchase(price=None, currency=None)))
    no_amounts = {k: v for k, v in ORDER.items() if k != "currency"}
    assert regranted[1] == track("Order Completed", {**no_amounts, "regranted": True, **BOOKKEEPING})


def test_revoked_is_order_refunded_failed_is_order_fulfilment_failed():
    full = segment.messages(env("purchase.revoked", purchase(state="REVOKED", partial=False)))
    assert full == [track("Order Refunded", {**ORDER, "partial": False, "total": 4.99, "revenue": -4.99,
                                             **BOOKKEEPING})]
    partial = segment.messages(env("purchase.revoked", purchase(partial=True)))
    assert partial == [track("Order Refunded", {**ORDER, "partial": True, **BOOKKEEPING})]  # amount unknown
    failed = segment.messages(env("purchase.failed", purchase(state="FULFILL_FAILED", reason="Kraty said 400")))
    assert failed == [track("Order Fulfilment Failed", {**ORDER, "reason": "Kraty said 400", "total": 4.99,
                                                        **BOOKKEEPING})]


def kraty(type, data) -> dict:
    return {"source": "kraty", "id": "wh_1", "type": type, "createdAt": "2026-11-21T10:00:00Z", "studioId": "s",
            "gameId": "demo", "data": data}


def test_kraty_events_are_track_calls_in_title_case_unknown_types_too():
    wallet = kraty("wallet.changed", {"externalPlayerId": "p-1", "currencyKey": "gems", "delta": 5})
    assert segment.messages(env("wallet.changed", wallet)) == [track("Wallet Changed", {
        "externalPlayerId": "p-1", "currencyKey": "gems", "delta": 5, "kraty_event_id": "wh_1", **BOOKKEEPING})]
    [odd] = segment.messages(env("lobby.exploded_twice", kraty("lobby.exploded_twice", {}), player=None, seq=None))
    assert odd == track("Lobby Exploded Twice", {"kraty_event_id": "wh_1", **BOOKKEEPING, "player_sequence": None},
                        anonymousId="kraty-bridge:demo")
    assert segment.title("grant.claimed") == "Grant Claimed" and segment.title("a-b_c.d") == "A B C D"


def test_player_merged_is_an_alias_then_a_track():
    merged = kraty("player.merged", {"fromExternalPlayerId": "guest-1", "intoExternalPlayerId": "p-1",
                                     "counts": {"fulfilments": 2}})
    alias, merge = segment.messages(env("player.merged", merged, player=None, seq=None))
    assert alias == {"type": "alias", "messageId": "evt_1:alias", "timestamp": "2026-11-21T10:00:00.000Z",
                     "userId": "p-1", "previousId": "guest-1", "context": LIBRARY}
    assert merge["event"] == "Player Merged" and merge["userId"] == "p-1" and "anonymousId" not in merge
    assert merge["properties"]["counts"] == {"fulfilments": 2}


def test_player_deleted_is_never_a_tracking_call():
    deleted = env("player.deleted", {"playerId": "p-1", "kratyPlayerId": "k-1", "source": "kraty"})
    with pytest.raises(segment.Untranslatable):
        segment.messages(deleted)
    assert segment.deletion_subject(deleted) == "p-1"
    assert segment.deletion_subject({**deleted, "playerId": None}) == "p-1"
    with pytest.raises(segment.Untranslatable, match="names no player"):
        segment.deletion_subject(env("player.deleted", {}, player=None))


def test_a_message_over_32_kb_is_untranslatable():
    with pytest.raises(segment.Untranslatable, match="32000 byte limit"):
        segment.messages(env("wallet.changed", kraty("wallet.changed", {"blob": "x" * 33_000})))


# ---------------------------------------------------------------- batching
def test_due_deliveries_go_in_one_batch_with_the_write_key(services, server):
    only_segment(services, server)
    ids = [record(services, player=f"p-{n}") for n in range(5)]
    assert deliver_now(services, ids[2], now=T0) == "delivered"
    [batch] = server.batches()
    assert [m["userId"] for m in batch] == ["p-2", "p-0", "p-1", "p-3", "p-4"]  # its own first, then oldest
    assert all(r.verified for r in server.got())
    assert {delivery(services, i).state for i in ids} == {"delivered"}
    assert {delivery(services, i).attempts for i in ids} == {1}
    with services.session() as session:
        event_ids = {session.get(Delivery, i).event_id for i in ids}
    assert {m["messageId"] for m in batch} == event_ids  # Segment dedupes retries on these
    assert all(m["event"] == "Wallet Changed" and m["timestamp"] == f"{T0:%Y-%m-%d}T10:00:00.000Z" for m in batch)
    assert deliver_now(services, ids[0], now=T0) == "delivered" and len(server.batches()) == 1  # its job: nothing


def test_batch_size_is_respected(services, redis, server):
    only_segment(services, server, batch_size=2)
    ids = [record(services, player=f"p-{n}", enqueue=True) for n in range(5)]
    drain(redis)
    assert sorted(len(b) for b in server.batches()) == [1, 2, 2]
    assert {delivery(services, i).state for i in ids} == {"delivered"}


def test_a_batch_stays_under_500_kb(services, server):
    only_segment(services, server)
    blob = "x" * 30_000   # about 30 KB a message: 17 fit in 500 KB
    ids = [record(services, player=f"p-{n}", payload={"blob": blob}) for n in range(20)]
    assert deliver_now(services, ids[0], now=T0) == "delivered"
    assert deliver_now(services, ids[-1], now=T0) == "delivered"
    assert server.refused == 0 and [len(b) for b in server.batches()] == [16, 4]
    assert all(len(r.body) <= 500_000 for r in server.got())
    assert {delivery(services, i).state for i in ids} == {"delivered"}


def test_an_event_over_segments_message_limit_is_dead_lettered_unsent(services, server):
    only_segment(services, server)
    big = record(services, payload={"blob": "x" * 40_000})
    small = record(services)
    assert deliver_now(services, small, now=T0) == "delivered"   # the big one is left out of the batch
    assert deliver_now(services, big, now=T0) == "dead"
    d = delivery(services, big)
    assert "32000 byte limit" in d.last_error and d.attempts == 0
    assert len(server.calls()) == 1


# ---------------------------------------------------------------- failures, on the controllable clock
def test_a_failed_batch_reschedules_every_delivery_then_one_batch_delivers_them(services, server):
    only_segment(services, server)
    server.always(500)
    ids = [record(services, player=f"p-{n}") for n in range(3)]
    assert deliver_now(services, ids[0], now=T0) == "failed"
    for i in ids:
        d = delivery(services, i)
        assert (d.state, d.attempts, d.last_status) == ("failed", 1, 500)
        assert d.next_attempt_at == T0 + timedelta(seconds=5) and d.last_error.startswith("HTTP 500")
    assert deliver_now(services, ids[1], now=T0 + timedelta(seconds=2)) == "early"
    server.always(200)
    assert deliver_now(services, ids[1], now=T0 + timedelta(seconds=5)) == "delivered"
    assert [len(b) for b in server.batches()] == [3, 3]
    assert {(delivery(services, i).state, delivery(services, i).attempts) for i in ids} == {("delivered", 2)}


def test_the_last_attempt_dead_letters_every_delivery_of_the_batch(services, server):
    only_segment(services, server, schedule=(0, 0))
    server.always(503)
    ids = [record(services, player=f"p-{n}") for n in range(2)]
    assert deliver_now(services, ids[0], now=T0) == "failed"
    assert deliver_now(services, ids[0], now=T0) == "dead"
    assert {delivery(services, i).state for i in ids} == {"dead"} and len(server.batches()) == 2


def test_429_retry_after_is_honoured_for_the_whole_batch(services, server):
    only_segment(services, server)
    server.answer((429, {"Retry-After": "120"}))
    ids = [record(services, player=f"p-{n}") for n in range(2)]
    assert deliver_now(services, ids[0], now=T0) == "failed"
    assert {delivery(services, i).next_attempt_at for i in ids} == {T0 + timedelta(seconds=120)}
    assert {delivery(services, i).last_status for i in ids} == {429}


def test_410_disables_the_sink(services, server):
    only_segment(services, server, batch_size=2)
    server.always(410)
    ids = [record(services, player=f"p-{n}") for n in range(3)]
    assert deliver_now(services, ids[0], now=T0) == "disabled"
    assert {delivery(services, i).state for i in ids} == {"disabled"}  # the third was waiting: stopped too
    with services.session() as session:
        assert session.get(SinkState, "seg").disabled_at is not None
    assert len(server.batches()) == 1


def test_400_means_a_malformed_batch_dead_lettered_at_once(services, server):
    only_segment(services, server)
    server.answer(400)
    ids = [record(services, player=f"p-{n}") for n in range(2)]
    assert deliver_now(services, ids[0], now=T0) == "dead"
    for i in ids:
        d = delivery(services, i)
        assert (d.state, d.attempts, d.last_status) == ("dead", 1, 400) and d.last_error.startswith("HTTP 400")


def test_the_rate_limit_counts_requests_not_events(services, redis, server):
    sink = only_segment(services, server, rate_limit=1, rate_window=60)
    ids = [record(services, player=f"p-{n}") for n in range(4)]
    assert deliver_now(services, ids[0], now=T0) == "delivered"
    assert redis.zcard(ratelimit.key(sink)) == 1 and len(server.calls()) == 4
    later = record(services)
    assert deliver_now(services, later, now=T0) == "throttled"
    assert delivery(services, later).attempts == 0 and len(server.batches()) == 1


# ---------------------------------------------------------------- deletion, replay, filters
def deleted_payload(player) -> dict:
    return {"playerId": player, "kratyPlayerId": "k-9", "source": "kraty", "type": "player.deleted"}


def test_player_deleted_becomes_a_regulation_and_nothing_is_tracked_for_that_player(services, server):
    only_segment(services, server)
    cancelled = record(services, player="p-9")               # queued before the erasure ...
    with services.session() as session:                     # ... and cancelled by it (any state not ACTIVE)
        session.execute(update(Delivery).where(Delivery.id == cancelled).values(state="cancelled"))
        session.commit()
    deletion = record(services, "player.deleted", player="p-9", payload=deleted_payload("p-9"))
    other = record(services, player="p-1")
    server.answer(503)
    assert deliver_now(services, deletion, now=T0) == "failed"   # retried on its schedule like any delivery
    assert deliver_now(services, deletion, now=T0 + timedelta(seconds=5)) == "delivered"
    assert server.regulations() == [{"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID",
                                     "subjectIds": ["p-9"]}] * 2
    assert [r.headers["Content-Type"] for r in server.got("/regulations")] == ["application/vnd.segment.v1+json"] * 2
    assert server.batches() == []                                # the deletion went alone
    assert deliver_now(services, other, now=T0) == "delivered"
    assert [m["userId"] for m in server.calls()] == ["p-1"]      # neither the deletion nor p-9's cancelled event
    assert delivery(services, cancelled).state == "cancelled"


def test_a_wrong_token_is_not_accepted(services, server):
    only_segment(services, server, regulations_token="wrong")
    deletion = record(services, "player.deleted", player="p-9", payload=deleted_payload("p-9"))
    assert deliver_now(services, deletion, now=T0) == "failed"
    assert delivery(services, deletion).last_status == 401 and server.regulations() == []


def test_replay_of_a_dead_segment_delivery(services, redis, server, runner):
    only_segment(services, server, schedule=(0,))
    server.always(500)
    dead = record(services)
    assert deliver_now(services, dead, now=T0) == "dead"
    server.always(200)
    result = runner.invoke(args=["sinks", "replay", dead, "--reason", "test"])
    assert result.exit_code == 0 and "1 delivery replayed" in result.output
    drain(redis)
    assert delivery(services, dead).state == "delivered"
    first, again = server.batches()
    assert first == again  # the same messageId: Segment keeps one


def test_sandbox_is_dropped_by_default_and_the_file_config_delivers(services, redis, server):
    assert services.sinks.get("seg").type == "segment"            # from the sinks file of this module
    assert record(services, environment="sandbox") is None
    delivered = record(services, "purchase.fulfilled", payload=purchase(), enqueue=True)
    drain(redis)
    assert delivery(services, delivered).state == "delivered"
    identify, order = server.calls()
    assert identify["type"] == "identify" and order["event"] == "Order Completed"
    assert json.loads(server.got()[0].body)["sentAt"].endswith("Z")
