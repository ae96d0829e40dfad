"""FULFILL_FAILED / REVOKE_FAILED are final: Kraty down during a PUT answers "not settled yet" (503, Retry-After),
never a failure that the bridge would then turn into a grant on its own."""
from __future__ import annotations

from tests.support.orders_flow import AUTH, drain, make_due, put_order
from tests.support.accelbyte import assert_not_settled, balances, query_path, result_path
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from middleware.orders.reconciler import reconcile_now

ORDER = [{"itemSku": "sword", "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}]


def grants(emulator) -> list:
    return [e for e in emulator.ledger() if e["kind"] in ("credit", "grant")]


def query(client, **params) -> list:
    response = client.get(query_path(), query_string=params, headers=AUTH)
    assert response.status_code == 200
    return response.get_json()["data"]


def test_kraty_down_answers_not_settled_then_the_settled_state(client, emulator, redis):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503})
    for version in (2, 3, 2):  # repeated while Kraty is still down: each repeat tries again, still not settled
        response = put_order(client, ORDER, version=version)
        body = assert_not_settled(response, "txn-1")
        assert "HTTP 503" in body["errorMessage"]
    assert query(client) == []
    assert balances(emulator) == ({}, {"sword": 1})  # what Kraty did take stays granted, once
    emulator.clear_faults()
    drain(redis)  # the background retry settles it
    again = put_order(client, ORDER)
    assert again.status_code == 200 and again.get_json()["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 100}, {"sword": 1}) and len(grants(emulator)) == 2


def test_an_order_answered_fulfill_failed_is_never_granted_without_retry(make_app, emulator, redis):
    """Kraty stays down until the bridge gives up: the order is FULFILL_FAILED (as the query says). Kraty
    coming back, the workers and the reconciler grant nothing more; only the storefront's retry does."""
    client = make_app(retry_max_attempts=2).test_client()
    emulator.faults({"path": "/wallet/gems/credit", "status": 503})
    assert_not_settled(put_order(client, ORDER), "txn-1")
    drain(redis)
    [row] = query(client, transactionId="txn-1")
    assert row["state"] == "FULFILL_FAILED"
    emulator.clear_faults()
    before = grants(emulator)
    make_due(client.application.extensions["kraty_bridge"])
    reconcile_now(client.application.extensions["kraty_bridge"], stale_seconds=0)
    drain(redis)
    assert grants(emulator) == before and balances(emulator) == ({}, {"sword": 1})
    assert query(client, transactionId="txn-1")[0]["state"] == "FULFILL_FAILED"
    retried = client.put(result_path(action="retry"), headers=AUTH)
    assert retried.status_code == 200 and retried.get_json()["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 100}, {"sword": 1})


def test_a_brief_outage_is_waited_out_inline(make_app, emulator, redis):
    """Within KB_PUT_SETTLE_SECONDS the PUT retries Kraty itself (its backoff, under the order's lease)."""
    client = make_app(put_settle_seconds=30.0).test_client()
    emulator.faults({"path": "/wallet/gems/credit", "status": 503, "count": 2})
    response = put_order(client, ORDER)
    assert response.status_code == 200 and response.get_json()["state"] == "FULFILLED"
    drain(redis)  # the retry scheduled meanwhile finds nothing to do
    assert balances(emulator) == ({"gems": 100}, {"sword": 1}) and len(grants(emulator)) == 2


def test_a_revocation_kraty_refuses_for_good_is_final(client, emulator, redis):
    """REVOKE_FAILED (here: the currency was spent) stays as it is until the storefront revokes again."""
    put_order(client, ORDER)
    emulator.faults({"path": "/wallet/gems/debit", "status": 409, "code": "insufficient_funds"})
    failed = client.put(result_path(action="revoke"), headers=AUTH)
    assert failed.status_code == 409 and failed.get_json()["state"] == "REVOKE_FAILED"
    emulator.clear_faults()
    reconcile_now(client.application.extensions["kraty_bridge"], stale_seconds=0)
    drain(redis)
    assert balances(emulator) == ({"gems": 100}, {"sword": 0})
    again = client.put(result_path(action="revoke", version=3), headers=AUTH)
    assert again.status_code == 200 and again.get_json()["state"] == "REVOKED"
    assert balances(emulator) == ({"gems": 0}, {"sword": 0})
