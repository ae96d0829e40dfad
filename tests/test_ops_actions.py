"""POST /v1/fulfilments/{id}/actions/...: retry, revoke, attach-player, make-good, resolve — roles, state rules,
reasons, idempotency, the audit log; and the same actions from `flask orders`."""
from __future__ import annotations

import getpass

import pytest

from middleware.orders.reconciler import reconcile_now

from tests.support.orders_flow import drain, make_due
from tests.support.ops_ledger import (
    GEMS,
    SWORD,
    audit_entries,
    failed_order,
    fulfilled_order,
    key,
    key_name,
    state,
)
from tests.support.stripe_events import balances, completed, order, post
from tests.test_orders_cli import failed_order as unresolved_order


def act(client, fulfilment_id, action, headers, **body):
    return client.post(f"/v1/fulfilments/{fulfilment_id}/actions/{action}", json=body, headers=headers)


def _error(response, status, code):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and error["requestId"]
    return error


def test_retry_grants_only_the_failed_rows_and_is_audited(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    operator = key(services, "operator")
    response = act(client, fulfilment_id, "retry", operator, reason="ticket 42: gems never arrived")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "FULFILLED" and body["replayed"] is False
    assert body["before"]["state"] == "FULFILL_FAILED" and body["after"]["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 100}, {"sword": 1})  # the gems once, the sword now
    [entry] = audit_entries(services, fulfilment_id)
    assert entry.id == body["auditId"] and entry.action == "retry" and entry.role == "operator"
    assert entry.actor == f"key:{key_name(services, operator)}" and entry.reason == "ticket 42: gems never arrived"
    assert entry.request_id and entry.namespace == "demo"
    assert [i["state"] for i in entry.before["items"]] == ["GRANTED", "FAILED"]
    assert [i["state"] for i in entry.after["items"]] == ["GRANTED", "GRANTED"]
    shown = client.get(f"/v1/fulfilments/{fulfilment_id}", headers=operator).get_json()
    assert any(h["actor"] == entry.actor and (h["detail"] or {}).get("reason") == entry.reason
               for h in shown["history"])
    # now FULFILLED: retrying is the wrong state
    again = _error(act(client, fulfilment_id, "retry", operator, reason="again"), 409, "invalid_state")
    assert again["details"]["state"] == "FULFILLED"
    assert len(audit_entries(services, fulfilment_id)) == 1


def test_the_same_idempotency_key_replays_the_first_answer(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    operator = key(services, "operator")
    first = act(client, fulfilment_id, "retry", operator, reason="r", idempotencyKey="ticket-42-retry")
    assert first.status_code == 200
    again = act(client, fulfilment_id, "retry", operator, reason="r", idempotencyKey="ticket-42-retry")
    assert again.status_code == 200  # not 409 although the order is FULFILLED now: the first answer
    assert again.get_json() == {**first.get_json(), "replayed": True}
    assert len(audit_entries(services, fulfilment_id)) == 1
    _error(act(client, fulfilment_id, "retry", operator, reason="other", idempotencyKey="ticket-42-retry"),
           422, "idempotency_key_reused")
    _error(act(client, fulfilment_id, "revoke", operator, reason="r", idempotencyKey="ticket-42-retry"),
           422, "idempotency_key_reused")
    # another key's same idempotency key is its own
    other = act(client, fulfilment_id, "revoke", key(services, "operator"), reason="r",
                idempotencyKey="ticket-42-retry")
    assert other.status_code == 200 and other.get_json()["state"] == "REVOKED"


@pytest.mark.parametrize("body, field", [
    ({}, "reason"),
    ({"reason": ""}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"reason": "x" * 501}, "reason"),
    ({"reason": "r", "idempotencyKey": ""}, "idempotencyKey"),
    ({"reason": "r", "colour": "red"}, "colour"),
])
def test_a_reason_is_required_and_bodies_are_strict(client, services, emulator, body, field):
    fulfilment_id = failed_order(client, emulator, services)
    response = client.post(f"/v1/fulfilments/{fulfilment_id}/actions/retry", json=body,
                           headers=key(services, "operator"))
    error = _error(response, 422, "validation_failed")
    assert field in error["details"]["fields"]["json"]
    assert state(services, fulfilment_id) == "FULFILL_FAILED" and audit_entries(services, fulfilment_id) == []


def test_roles_keys_and_unknown_orders(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    body = {"reason": "r"}
    _error(client.post(f"/v1/fulfilments/{fulfilment_id}/actions/retry", json=body), 401, "unauthenticated")
    _error(act(client, fulfilment_id, "retry", {"Authorization": "Bearer nope"}, **body), 401, "unauthenticated")
    _error(act(client, fulfilment_id, "retry", key(services, "viewer"), **body), 403, "forbidden")
    operator = key(services, "operator")
    _error(act(client, fulfilment_id, "resolve", operator, **body), 403, "forbidden")
    _error(act(client, fulfilment_id, "make-good", operator, contents=[{"currencyKey": "gems", "amount": 5}], **body),
           403, "forbidden")
    _error(act(client, fulfilment_id, "retry", key(services, "operator", ["other-game"]), **body), 404, "not_found")
    _error(act(client, "0" * 32, "retry", operator, **body), 404, "not_found")
    assert act(client, fulfilment_id, "explode", operator, **body).status_code == 404  # no such action
    assert state(services, fulfilment_id) == "FULFILL_FAILED" and audit_entries(services, fulfilment_id) == []
    assert act(client, fulfilment_id, "retry", key(services, "admin"), **body).get_json()["state"] == "FULFILLED"


def test_revoke_takes_back_what_was_granted_and_only_then(client, services, emulator):
    operator = key(services, "operator")
    fulfilment_id = fulfilled_order(client, services, items=[GEMS, SWORD])
    response = act(client, fulfilment_id, "revoke", operator, reason="chargeback by phone")
    assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    assert balances(emulator) == ({"gems": 0}, {"sword": 0})
    error = _error(act(client, fulfilment_id, "revoke", operator, reason="again"), 409, "invalid_state")
    assert error["details"]["state"] == "REVOKED"
    # nothing granted: Kraty refused every row
    emulator.faults({"path": "/wallet/gems/credit", "status": 400})
    from tests.support.orders_flow import put_order
    assert put_order(client, [GEMS], txn="t-none").get_json()["state"] == "FULFILL_FAILED"
    emulator.clear_faults()
    from tests.support.ops_ledger import order_id
    nothing = order_id(services, "t-none")
    assert _error(act(client, nothing, "revoke", operator, reason="r"), 409, "invalid_state")["details"]["state"] == \
        "FULFILL_FAILED"


def test_retry_of_a_failed_take_back(client, services, emulator):
    operator = key(services, "operator")
    fulfilment_id = fulfilled_order(client, services, items=[SWORD])
    emulator.faults({"path": "/inventory/sword/revoke", "status": 400})
    assert act(client, fulfilment_id, "revoke", operator, reason="refund").get_json()["state"] == "REVOKE_FAILED"
    emulator.clear_faults()
    response = act(client, fulfilment_id, "retry", operator, reason="Kraty fixed")
    assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    assert balances(emulator)[1] == {"sword": 0}


def test_attach_player_fulfils_a_player_unresolved_order(client, services, emulator, redis, stripe_fake):
    o = unresolved_order(client, redis, services, stripe_fake)
    operator = key(services, "operator")
    error = _error(act(client, o["id"], "attach-player", operator, reason="r"), 422, "validation_failed")
    assert "playerId" in error["details"]["fields"]["json"]
    _error(act(client, o["id"], "attach-player", operator, reason="r", playerId="has space"), 422, "validation_failed")
    response = act(client, o["id"], "attach-player", operator, reason="support found the player", playerId="player-7")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "FULFILLED" and response.get_json()["after"]["playerId"] == "player-7"
    assert balances(emulator, "player-7")[0] == {"gems": 100}
    assert order(services, o["session"])["player"] == "player-7"
    error = _error(act(client, o["id"], "attach-player", operator, reason="r", playerId="player-8"), 409,
                   "invalid_state")
    assert error["details"]["state"] == "FULFILLED"
    fulfilment_id = failed_order(client, emulator, services)  # failed for another reason: it has its player
    assert _error(act(client, fulfilment_id, "attach-player", operator, reason="r", playerId="p"), 409,
                  "invalid_state")["details"]["state"] == "FULFILL_FAILED"


def _grants(emulator, player="player-1"):
    return emulator.player(player).get("grants", [])


def test_make_good_grants_once_in_kraty_and_is_noted(client, services, emulator):
    fulfilment_id = fulfilled_order(client, services)
    admin = key(services, "admin")
    contents = [{"currencyKey": "gems", "amount": 50}, {"itemKey": "sword", "quantity": 1}]
    response = act(client, fulfilment_id, "make-good", admin, reason="sorry for the wait", contents=contents,
                   idempotencyKey="mg-1")
    assert response.status_code == 200, response.get_json()
    made = response.get_json()["makeGood"]
    assert made["status"] == "granted" and made["grantId"] and made["contents"] == contents
    [grant] = _grants(emulator)
    assert grant["grantId"] == made["grantId"] and "sorry for the wait" in grant["reason"]
    again = act(client, fulfilment_id, "make-good", admin, reason="sorry for the wait", contents=contents,
                idempotencyKey="mg-1")
    assert again.get_json()["makeGood"]["grantId"] == made["grantId"] and again.get_json()["replayed"] is True
    assert len(_grants(emulator)) == 1
    history = client.get(f"/v1/fulfilments/{fulfilment_id}", headers=admin).get_json()["history"]
    [note] = [h["detail"] for h in history if (h["detail"] or {}).get("action") == "make_good"]
    assert note["grant"] == made["grantId"] and note["audit"] == response.get_json()["auditId"]
    assert state(services, fulfilment_id) == "FULFILLED"


def test_make_good_while_kraty_is_down_is_retried_with_the_same_key(client, services, emulator):
    fulfilment_id = fulfilled_order(client, services)
    admin = key(services, "admin")
    body = {"reason": "goodwill", "contents": [{"currencyKey": "gems", "amount": 5}], "idempotencyKey": "mg-2"}
    emulator.faults({"path": "/grants", "status": 503})
    _error(act(client, fulfilment_id, "make-good", admin, **body), 503, "kraty_unavailable")
    assert _grants(emulator) == []
    emulator.clear_faults()
    response = act(client, fulfilment_id, "make-good", admin, **body)
    assert response.status_code == 200 and response.get_json()["makeGood"]["status"] == "granted"
    assert len(_grants(emulator)) == 1 and len(audit_entries(services, fulfilment_id)) == 1


@pytest.mark.parametrize("contents", [None, [], [{"currencyKey": "gems"}], [{"currencyKey": "gems", "amount": 0}],
                                      [{"itemKey": "sword", "quantity": "1"}], [{"colour": "red"}], "gems"])
def test_make_good_contents_are_checked(client, services, emulator, contents):
    fulfilment_id = fulfilled_order(client, services)
    body = {"reason": "r", **({"contents": contents} if contents is not None else {})}
    _error(act(client, fulfilment_id, "make-good", key(services, "admin"), **body), 422, "validation_failed")
    assert _grants(emulator) == [] and audit_entries(services, fulfilment_id) == []


def test_make_good_that_kraty_refuses(client, services, emulator):
    fulfilment_id = fulfilled_order(client, services)
    response = act(client, fulfilment_id, "make-good", key(services, "admin"), reason="r",
                   contents=[{"currencyKey": "no_such_currency", "amount": 5}])
    _error(response, 422, "kraty_refused")
    [entry] = audit_entries(services, fulfilment_id)
    assert entry.after["makeGood"]["status"] == "failed"


def test_resolve_closes_a_failed_order_for_good(client, services, emulator, redis):
    fulfilment_id = failed_order(client, emulator, services)
    admin = key(services, "admin")
    response = act(client, fulfilment_id, "resolve", admin, reason="refunded by the store manually")
    assert response.status_code == 200 and response.get_json()["state"] == "RESOLVED"
    make_due(services)
    assert reconcile_now(services)["enqueued"] == 0
    drain(redis)
    assert state(services, fulfilment_id) == "RESOLVED" and balances(emulator)[1] == {}
    for action in ("resolve", "retry", "attach-player"):
        error = _error(act(client, fulfilment_id, action, admin, reason="r", **(
            {"playerId": "p"} if action == "attach-player" else {})), 409, "invalid_state")
        assert error["details"]["state"] == "RESOLVED"
    _error(act(client, fulfilled_order(client, services, txn="t-ok2", user="player-2"), "resolve", admin, reason="r"), 409,
           "invalid_state")
    # what it did grant can still be taken back
    assert act(client, fulfilment_id, "revoke", admin, reason="fraud").get_json()["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}


def test_cli_retry_revoke_and_resolve_are_audited_as_the_os_user(client, runner, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    missing = runner.invoke(args=["orders", "retry", fulfilment_id])
    assert missing.exit_code != 0 and "--reason" in missing.output
    done = runner.invoke(args=["orders", "retry", fulfilment_id, "--reason", "ticket 7"])
    assert done.exit_code == 0 and done.output.strip() == f"{fulfilment_id}: FULFILLED", done.output
    wrong = runner.invoke(args=["orders", "resolve", fulfilment_id, "--reason", "r"])
    assert wrong.exit_code != 0 and "FULFILLED" in wrong.output
    assert runner.invoke(args=["orders", "revoke", fulfilment_id, "--reason", "fraud"]).exit_code == 0
    entries = audit_entries(services, fulfilment_id)
    assert [(e.action, e.actor, e.role, e.reason) for e in entries] == [
        ("retry", f"cli:{getpass.getuser()}", "cli", "ticket 7"), ("revoke", f"cli:{getpass.getuser()}", "cli", "fraud")]


def test_stripe_helpers_still_post(client, stripe_fake):
    session = stripe_fake.session(line_items=[{"price": "price_gems_100", "quantity": 1}])
    assert post(client, completed(session)).status_code == 200
