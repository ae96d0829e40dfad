"""Google Play end to end: push notifications (OIDC-verified), the Publisher API fake, receipts."""
from __future__ import annotations

import pytest

from middleware.ledger import repository as repo

from tests.support.google_play import (PACKAGE, RECEIPTS, Google, certs_server, google, make_app, message,  # noqa: F401
                             one_time, subscription, voided, write_catalog)
from tests.support.google_push_tokens import make_push_token
from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, inbound


def gp_order(services, txn):
    with services.session() as session:
        f = repo.find(session, "demo", "google_play", txn)
        return None if f is None else {"state": f.state, "player": f.player_id, "reason": f.reason,
                                       "environment": f.environment, "followup": f.followup_state,
                                       "attention": f.attention}


def actions_seen(fake):
    return [r["path"].rsplit(":", 1)[-1] for r in fake.requests() if r["path"].endswith((":consume", ":acknowledge"))]


def test_purchase_with_the_players_account_id_is_granted_and_consumed(make_app, catalog_path, tmp_path, google_fake,
                                                                       certs_server, redis, emulator):
    certs_server.reset()
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path, google_fake.service_account(),
                                              player_ids="obfuscated_account_id"),
                   google_api_base=google_fake.url, google_token_uri=google_fake.token_uri,
                   google_certs_url=certs_server.url)
    g = Google(app, google_fake)
    p = google_fake.product(productId="gems_100", quantity=2, obfuscatedExternalAccountId="player-1")
    response = g.push(one_time(p["token"]))
    assert response.status_code == 200, response.get_json()
    drain(redis)
    o = gp_order(g.services, p["token"])
    assert o["state"] == "FULFILLED" and o["player"] == "player-1" and o["followup"] == "done", o
    assert balances(emulator)[0] == {"gems": 200}
    assert actions_seen(google_fake) == ["consume"]


def test_notification_then_receipt_and_receipt_then_notification(google, redis, emulator, google_fake):
    first = google_fake.product(productId="gems_100")
    google.push(one_time(first["token"]))
    drain(redis)
    assert gp_order(google.services, first["token"])["reason"].startswith("player_unresolved")
    body = google.receipt("player-1", "gems_100", first["token"]).get_json()
    assert body["state"] == "FULFILLED", body
    second = google_fake.product(productId="sword")
    assert google.receipt("player-1", "sword", second["token"]).get_json()["state"] == "FULFILLED"
    google.push(one_time(second["token"], sku="sword"))
    drain(redis)
    assert balances(emulator) == ({"gems": 100}, {"sword": 1})
    assert sorted(actions_seen(google_fake)) == ["acknowledge", "consume"]  # the sword is not consumable


def test_pending_waits_cancelled_is_recorded(google, redis, emulator, google_fake):
    p = google_fake.product(productId="gems_100", state="PENDING")
    google.push(one_time(p["token"]))
    drain(redis)
    assert gp_order(google.services, p["token"]) is None
    pending = google.receipt("player-1", "gems_100", p["token"], wait=0)
    assert pending.status_code == 202 and pending.get_json()["state"] == "PENDING"
    google_fake.update_product(p["token"], state="PURCHASED")
    google.push(one_time(p["token"]))
    drain(redis)
    assert gp_order(google.services, p["token"])["state"] == "FULFILLED"
    c = google_fake.product(productId="gems_100", state="CANCELLED")
    google.push(one_time(c["token"], kind=2))
    drain(redis)
    assert gp_order(google.services, c["token"]) is None
    assert balances(emulator)[0] == {"gems": 100}


def test_two_partial_refunds_then_a_full_one(google, redis, emulator, google_fake):
    p = google_fake.product(productId="gems_100", quantity=4)
    google.receipt("player-1", "gems_100", p["token"])
    assert balances(emulator)[0] == {"gems": 400}
    for units, gems in ((1, 300), (2, 100)):
        google_fake.void(p["token"], voidedQuantity=units)
        google.push(voided(p["token"], p["orderId"], refund_type=2))
        drain(redis)
        assert balances(emulator)[0] == {"gems": gems}, units
    google_fake.void(p["token"])
    google.push(voided(p["token"], p["orderId"], refund_type=1))
    drain(redis)
    assert gp_order(google.services, p["token"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}


def test_the_voided_poll_finds_a_refund_without_a_notification(google, redis, emulator, google_fake, runner):
    p = google_fake.product(productId="gems_100", quantity=1)
    google.receipt("player-1", "gems_100", p["token"])
    google_fake.void(p["token"])
    result = google.app.test_cli_runner().invoke(args=["google", "poll-voided"])
    assert result.exit_code == 0 and "1 new" in result.output, result.output
    drain(redis)
    assert gp_order(google.services, p["token"])["state"] == "REVOKED"
    again = google.app.test_cli_runner().invoke(args=["google", "poll-voided"])
    assert "0 new" in again.output
    google.push(voided(p["token"], p["orderId"]))  # the late notification changes nothing more
    drain(redis)
    assert balances(emulator)[0] == {"gems": 0}


def test_consume_failure_is_retried_on_its_own(google, redis, emulator, google_fake, services):
    from tests.support.orders_flow import release_scheduled
    p = google_fake.product(productId="gems_100")
    google_fake.faults({"path": ":consume$", "status": 503, "count": 2})
    google.receipt("player-1", "gems_100", p["token"], wait=0)
    drain(redis)
    release_scheduled(redis)
    drain(redis)
    o = gp_order(google.services, p["token"])
    assert o["followup"] == "done", o
    assert balances(emulator)[0] == {"gems": 100}
    assert len(emulator.ledger()) == 1  # never granted again


def test_subscription_periods_grant_once_each_and_revoked_takes_back_the_latest(google, redis, emulator,
                                                                                google_fake):
    s = google_fake.subscription(productId="vip_monthly", obfuscatedExternalAccountId=None)
    assert google.receipt("player-1", "vip_monthly", s["token"]).get_json()["state"] == "FULFILLED"
    google.push(subscription(s["token"], 4))  # PURCHASED again: the same period
    google_fake.renew(s["token"])
    google.push(subscription(s["token"], 2))  # RENEWED: a new order
    drain(redis)
    assert balances(emulator) == ({"gems": 600}, {"vip_pass": 2})
    google.push(subscription(s["token"], 12))  # REVOKED: the latest period
    drain(redis)
    assert balances(emulator) == ({"gems": 300}, {"vip_pass": 1})
    assert "acknowledge" in actions_seen(google_fake)


def test_test_notifications_and_unknown_kinds(google, redis, emulator, services):
    test = google.push({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                        "testNotification": {"version": "1.0"}})
    assert test.status_code == 200 and test.get_json()["outcome"] == "ignored"
    unknown = google.push({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1", "somethingNew": {}})
    assert unknown.status_code == 200
    assert emulator.ledger() == []


def test_test_purchases_are_sandbox(google, redis, google_fake):
    p = google_fake.product(productId="gems_100", test=True)
    body = google.receipt("player-1", "gems_100", p["token"]).get_json()
    assert body["environment"] == "sandbox"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("claims", [{"aud": "https://elsewhere"}, {"iss": "https://evil.example"},
                                    {"email": "someone@else.iam.gserviceaccount.com"}, {"email_verified": False},
                                    {"exp": 1}])
def test_bad_push_tokens_are_401(google, services, claims):
    response = google.push(one_time("t"), **claims)
    assert response.status_code == 401
    assert inbound(services, source="google_play") == []


def test_missing_or_garbled_authorization_is_401(google, services):
    c = google.client
    assert c.post("/webhooks/google-play", json=message(one_time("t"))).status_code == 401
    assert c.post("/webhooks/google-play", json=message(one_time("t")),
                  headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401


def test_unreadable_messages_are_recorded_as_rejected_and_acknowledged(google, services):
    bad_base64 = message(one_time("t"))
    bad_base64["message"]["data"] = "%%%not base64%%%"
    assert google.push(body=bad_base64).get_json()["outcome"] == "rejected"
    not_json = message(one_time("t"))
    not_json["message"]["data"] = "bm90IGpzb24="  # "not json"
    assert google.push(body=not_json).get_json()["outcome"] == "rejected"
    unknown_package = google.push({**one_time("t"), "packageName": "com.other"})
    assert unknown_package.status_code == 200 and unknown_package.get_json()["outcome"] == "rejected"
    assert [row[1] for row in inbound(services, source="google_play")] == ["rejected"] * 3


def test_not_an_envelope_is_400(google):
    assert google.push(body={"nope": 1}).status_code == 400


def test_unknown_product_fails_visibly(google, redis, google_fake):
    p = google_fake.product(productId="mystery_unknown")
    google.push(one_time(p["token"], sku="mystery_unknown"))
    drain(redis)
    o = gp_order(google.services, p["token"])
    assert o["state"] == "FULFILL_FAILED"


def test_receipt_for_another_player_and_mismatched_account(google, google_fake):
    p = google_fake.product(productId="gems_100")
    assert google.receipt("player-1", "gems_100", p["token"]).status_code == 200
    other = google.receipt("player-2", "gems_100", p["token"])
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "receipt_already_redeemed"
    named = google_fake.product(productId="gems_100", obfuscatedExternalAccountId="player-7")
    mismatch = google.receipt("player-8", "gems_100", named["token"])
    assert mismatch.status_code == 409 and mismatch.get_json()["error"]["code"] == "player_mismatch"
    unknown = google.receipt("player-1", "gems_100", "no-such-token")
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "receipt_invalid"
    wrong_product = google.receipt("player-1", "sword", p["token"])
    assert wrong_product.status_code == 422


@pytest.mark.parametrize("status", [503, 429])
def test_publisher_api_5xx_and_429_are_retried(google, redis, emulator, google_fake, status):
    from sqlalchemy import select

    from middleware.ledger.models import InboundEvent
    from middleware.orders.reconciler import reconcile_now
    p = google_fake.product(productId="gems_100", state="PENDING")
    assert google.receipt("player-1", "gems_100", p["token"], wait=0).status_code == 202  # links the token
    google_fake.update_product(p["token"], state="PURCHASED")
    google_fake.faults({"path": "productsv2", "status": status, "count": 1})
    google.push(one_time(p["token"]))
    drain(redis)  # the job met the 503 and raised: the event stays pending
    assert gp_order(google.services, p["token"]) is None
    reconcile_now(google.services, stale_seconds=0)
    drain(redis)
    assert gp_order(google.services, p["token"])["state"] == "FULFILLED"
    with google.services.session() as session:
        row = session.scalars(select(InboundEvent).where(InboundEvent.source == "google_play")).one()
        assert (row.outcome, row.attempts) == ("processed", 2)
    assert balances(emulator)[0] == {"gems": 100}


def test_database_down_is_503(make_app, catalog_path, tmp_path, google_fake, certs_server):
    certs_server.reset()
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path, google_fake.service_account()),
                   google_certs_url=certs_server.url, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    answer = app.test_client().post("/webhooks/google-play", json=message(one_time("t")),
                                    headers={"Authorization": f"Bearer {make_push_token()}"})
    assert answer.status_code == 503 and answer.headers["Retry-After"]
