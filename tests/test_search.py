"""Search by any id a customer or a store quotes (GET /v1/search, ``flask orders search``, the console's home):
every kind of store id the ledger holds finds its order and says how; a player id prefix lists the players
that exist, never a player of that literal name; game, state and time filters; bad input is a clear 4xx."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from mappers import google_play as gp
from mappers.google_play_api import ProductState
from mappers import stripe_reversals as sr
from middleware.ledger.models import Fulfilment, HistoryEntry, PaymentRef, Reversal, utcnow
from middleware.api.search import FoundOrder, SearchResult
from middleware.ledger import migrate
from tests.support.ops_ledger import key

# (kind, the id a customer quotes, how the order matches)
IDS = [("checkout session", "cs_test_a1B2c3", "transactionId"),
       ("payment intent", "pi_3Qx1", "paymentRef"),
       ("charge", "ch_3Qx1", "paymentRef"),
       ("payment (py_)", "py_3Qx1", "paymentRef"),
       ("invoice", "in_1Qx1", "paymentRef"),
       ("refund", "re_3Qx1", "reversal"),
       ("dispute", "dp_1Qx1", "reversal"),
       ("google order id", "GPA.3301-2233-4455-66778", "paymentRef"),
       ("google purchase token", "opaque-token-abc.AO-J1Oz", "transactionId"),
       ("apple original transaction", "2000000111111111", "playerKey")]


def _order(session, namespace="demo", source="stripe", txn="cs_test_a1B2c3", player="buyer-1", state="FULFILLED",
           player_key=None, created=None, attention=None) -> str:
    now = created or utcnow()
    f = Fulfilment(namespace=namespace, source=source, transaction_id=txn, player_id=player, state=state,
                   request_hash="h", lines=[{"itemSku": "gems_100", "quantity": 1}], player_key=player_key,
                   attention=attention, created_at=now, updated_at=now, state_changed_at=now)
    session.add(f)
    session.flush()
    return f.id


@pytest.fixture
def ledger(services):
    """A Stripe order with its payment ids, refund and dispute; a Google Play one-time purchase (keyed by its token,
    its GPA order id a payment ref); an App Store order (its original transaction id the player key); orders of
    other players whose ids share a prefix, and one in another game."""
    with services.session() as s:
        stripe = _order(s)
        for ref in ("pi_3Qx1", "ch_3Qx1", "py_3Qx1", "in_1Qx1"):
            s.add(PaymentRef(source="stripe", ref=ref, fulfilment_id=stripe, created_at=utcnow()))
        for key_, store_ref, kind in (("refund:re_3Qx1:taken", "re_3Qx1", "refund"),
                                      ("dispute:dp_1Qx1:opened", "dp_1Qx1", "dispute_opened")):
            s.add(Reversal(source="stripe", reversal_key=key_, ref="pi_3Qx1", kind=kind, state="applied",
                           store_ref=store_ref, fulfilment_id=stripe, created_at=utcnow()))
        google = _order(s, source="google_play", txn="opaque-token-abc.AO-J1Oz", player="buyer-2",
                        player_key="opaque-token-abc.AO-J1Oz")
        s.add(PaymentRef(source="google_play", ref="GPA.3301-2233-4455-66778", fulfilment_id=google,
                         created_at=utcnow()))
        apple = _order(s, source="app_store", txn="2000000222222222", player="buyer-3",
                       player_key="2000000111111111", created=utcnow() - timedelta(days=10), state="FULFILL_FAILED")
        _order(s, source="accelbyte", txn="sf-1", player="buyer-10")
        other_game = _order(s, namespace="other", source="accelbyte", txn="sf-2", player="buyer-11")
        s.commit()
    return {"stripe": stripe, "google": google, "apple": apple, "other": other_game}


def _search(client, headers, **params):
    return client.get("/v1/search", query_string=params, headers=headers)


@pytest.mark.parametrize("kind, quoted, how", IDS, ids=[i[0] for i in IDS])
def test_every_store_id_finds_its_order_and_says_how(client, services, ledger, kind, quoted, how):
    response = _search(client, key(services, "viewer"), q=quoted)
    assert response.status_code == 200, response.get_json()
    orders = response.get_json()["orders"]
    assert len(orders) == 1 and orders[0]["matchedBy"] == how
    expected = {"google": ("GPA.", "opaque"), "apple": ("2000000",)}
    owner = next((name for name, starts in expected.items() if quoted.startswith(starts)), "stripe")
    assert orders[0]["id"] == ledger[owner]


def test_order_id_transaction_id_and_player_id(client, services, ledger):
    headers = key(services, "viewer")
    assert [o["matchedBy"] for o in _search(client, headers, q=ledger["apple"]).get_json()["orders"]] == ["orderId"]
    assert [o["id"] for o in _search(client, headers, q="2000000222222222").get_json()["orders"]] == [ledger["apple"]]
    found = _search(client, headers, q="buyer-2").get_json()
    assert [(o["id"], o["matchedBy"]) for o in found["orders"]] == [(ledger["google"], "playerId")]
    assert found["players"] == [{"namespace": "demo", "playerId": "buyer-2"}]


def test_a_player_prefix_lists_the_players_that_exist_in_id_order(client, services, ledger):
    found = _search(client, key(services, "viewer"), q="buyer-1").get_json()
    assert found["players"] == [{"namespace": "demo", "playerId": "buyer-1"},
                                {"namespace": "demo", "playerId": "buyer-10"},
                                {"namespace": "other", "playerId": "buyer-11"}]
    assert _search(client, key(services, "viewer"), q="buyer-").get_json()["orders"] == []   # no literal player
    assert len(_search(client, key(services, "viewer"), q="buyer-").get_json()["players"]) == 5
    # LIKE's wildcards are literal characters here
    assert _search(client, key(services, "viewer"), q="buyer_").get_json()["players"] == []
    assert _search(client, key(services, "viewer"), q="%").get_json()["players"] == []


def test_a_key_limited_to_a_game_sees_only_its_orders_and_players(client, services, ledger):
    headers = key(services, "viewer", ["demo"])
    found = _search(client, headers, q="buyer-1").get_json()
    assert {p["namespace"] for p in found["players"]} == {"demo"}
    assert _search(client, headers, q="sf-2").get_json()["orders"] == []
    assert _search(client, headers, q="sf-2", namespace="other").status_code == 422   # not a game it sees


def test_state_and_time_filters(client, services, ledger):
    headers = key(services, "viewer")
    assert _search(client, headers, q="2000000111111111", state="FULFILLED").get_json()["orders"] == []
    assert len(_search(client, headers, q="2000000111111111", state="FULFILL_FAILED").get_json()["orders"]) == 1
    recent = (utcnow() - timedelta(days=1)).isoformat()
    assert _search(client, headers, q="2000000111111111", createdAfter=recent).get_json()["orders"] == []
    assert len(_search(client, headers, q="pi_3Qx1", createdAfter=recent).get_json()["orders"]) == 1


@pytest.mark.parametrize("params, status", [
    ({}, 422), ({"q": "x" * 256}, 422), ({"q": "pi_1", "state": "NOPE"}, 422), ({"q": "pi_1", "limit": 0}, 422),
    ({"q": "pi_1", "createdAfter": "2026-01-02T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"}, 422),
    ({"q": "pi_1", "namespace": "nope"}, 422), ({"q": "pi_1", "other": "x"}, 422), ({"q": "a\x00b"}, 400)])
def test_bad_searches_are_clear_4xx(client, services, params, status):
    response = _search(client, key(services, "viewer"), **params)
    assert response.status_code in (status, 400, 422) and response.status_code < 500
    assert "error" in response.get_json()


def test_search_needs_a_viewer_key(client, services):
    assert client.get("/v1/search?q=pi_1").status_code == 401
    assert _search(client, key(services, "receipts"), q="pi_1").status_code == 403


def test_the_cli_searches_too(runner, ledger):
    result = runner.invoke(args=["orders", "search", "re_3Qx1"])
    assert result.exit_code == 0, result.output
    assert ledger["stripe"] in result.output and "refund or dispute id" in result.output
    as_json = json.loads(runner.invoke(args=["orders", "search", "buyer-1", "--json"]).output)
    assert {p["playerId"] for p in as_json["players"]} == {"buyer-1", "buyer-10", "buyer-11"}
    assert runner.invoke(args=["orders", "search", "x" * 256]).exit_code != 0


# -- where the ids come from --------------------------------------------------------------------------

def test_a_google_one_time_purchase_keeps_its_order_id_as_a_payment_ref():
    state = ProductState(state=gp.PURCHASED, order_id="GPA.3301-2233-4455-66778", obfuscated_account_id="buyer-2",
                         acknowledged=False, consumed=False, test=False,
                         lines=[{"store": "google_play", "product": "gems_100", "quantity": 1}])
    purchase = gp.purchase("opaque-token-abc.AO-J1Oz", state, player_ids="obfuscated_account_id")
    assert purchase.extra_refs == ("GPA.3301-2233-4455-66778",)
    assert purchase.payment_ref == purchase.transaction_id == "opaque-token-abc.AO-J1Oz"


def test_a_stripe_refund_and_dispute_keep_their_own_ids():
    refund = {"id": "re_3Qx1", "object": "refund", "amount": 999, "charge": "ch_3Qx1", "currency": "usd",
              "payment_intent": "pi_3Qx1", "status": "succeeded", "failure_reason": None}
    assert sr.refund_notice(refund, "pi_3Qx1", 999, "evt_1", "pending").store_ref == "re_3Qx1"
    dispute = {"id": "dp_1Qx1", "amount": 999, "charge": "ch_3Qx1", "currency": "usd", "status": "needs_response"}
    assert sr.dispute_notice(dispute, "pi_3Qx1", 999, "evt_2").store_ref == "dp_1Qx1"


def test_migration_0008_backfills_refund_and_dispute_ids_and_google_order_ids(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0007")
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    now = "2026-12-01 10:00:00.000000"
    with engine.begin() as c:
        for fid, source, txn in (("f1", "stripe", "cs_1"), ("f2", "google_play", "tok-1")):
            c.execute(text("INSERT INTO fulfilments (id, namespace, source, transaction_id, storefront, environment, "
                           "state, request_hash, lines, attempts, reversal_seq, version, created_at, updated_at, "
                           "state_changed_at) VALUES (:id, 'demo', :s, :t, '', 'production', 'FULFILLED', 'h', '[]', "
                           "0, 0, 1, :n, :n, :n)"), {"id": fid, "s": source, "t": txn, "n": now})
        c.execute(text("INSERT INTO fulfilment_history (fulfilment_id, at, actor, to_state, detail) VALUES "
                       "('f2', :n, 'x', 'RECEIVED', :d)"), {"n": now, "d": json.dumps(
                           {"event": "received", "order_id": "GPA.1-2-3"})})
        for key_ in ("refund:re_9:taken", "dispute:du_9:lost"):
            c.execute(text("INSERT INTO reversals (source, reversal_key, ref, kind, state, fulfilment_id, created_at) "
                           "VALUES ('stripe', :k, 'pi_9', 'refund', 'applied', 'f1', :n)"), {"k": key_, "n": now})
    migrate.upgrade(url)
    with engine.connect() as c:
        assert sorted(c.execute(text("SELECT store_ref FROM reversals")).scalars()) == ["du_9", "re_9"]
        assert c.execute(text("SELECT fulfilment_id FROM payment_refs WHERE ref = 'GPA.1-2-3'")).scalar() == "f2"
    engine.dispose()
    migrate.downgrade(url, "0007")
    migrate.upgrade(url)


def test_a_search_is_answered_in_its_schemas_shape(client, services, ledger):
    """Answered as ops.search returns it (no marshmallow dump per request): exactly what SearchResult would dump."""
    body = _search(client, key(services, "viewer"), q="buyer-1").get_json()
    assert body["orders"] and body["players"]
    assert SearchResult().dump(body) == body
    assert all(set(order) == set(FoundOrder._declared_fields) for order in body["orders"])
