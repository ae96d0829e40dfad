"""POST /webhooks/stripe: what every request gets, good or bad — and that bad ones change nothing."""
from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from middleware.ledger.models import Fulfilment, InboundEvent

from tests.support.orders_flow import drain
from tests.support.stripe_events import SECRET, balances, body_of, completed, event, inbound, order, post, sign, write_catalog
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


def counts(services) -> tuple[int, int]:
    with services.session() as session:
        return (session.scalar(select(func.count()).select_from(InboundEvent)),
                session.scalar(select(func.count()).select_from(Fulfilment)))


def error(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["requestId"], body
    return body["error"]["code"]


@pytest.fixture
def paid(stripe_fake):
    session = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100",
                                                                               "quantity": 1}])
    return completed(session)


# ---------------------------------------------------------------- bad input: 4xx, nothing recorded
@pytest.mark.parametrize("signature, status, code", [
    ("", 400, "bad_signature_header"),                      # missing
    ("v1=abc", 400, "bad_signature_header"),                # no timestamp
    ("t=abc,v1=00", 400, "bad_signature_header"),           # timestamp not a number
    ("t=1700000000", 400, "bad_signature_header"),          # no v1 signature
    ("garbage", 400, "bad_signature_header"),               # not key=value
    ("t={now},v0=" + "0" * 64, 400, "bad_signature_header"),  # only the legacy scheme
    ("t={now},v1=" + "0" * 64, 401, "invalid_signature"),   # well-formed, does not verify
])
def test_bad_signature_headers(client, services, paid, signature, status, code):
    response = post(client, paid, signature=signature.replace("{now}", str(int(time.time()))))
    assert response.status_code == status and error(response) == code
    assert counts(services) == (0, 0)


def test_a_signature_made_with_another_secret_is_401(client, services, paid):
    response = post(client, paid, secret="whsec_someone_else")
    assert response.status_code == 401 and error(response) == "invalid_signature"
    assert counts(services) == (0, 0)


def test_a_signed_body_that_was_changed_is_401(client, services, paid):
    body = body_of(paid)
    signature = sign(body)
    response = post(client, body.replace(b"player-1", b"player-2"), signature=signature)
    assert response.status_code == 401
    assert counts(services) == (0, 0)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400])  # stale, and from the future
def test_timestamps_outside_the_tolerance_are_401(client, services, paid, age):
    response = post(client, paid, t=int(time.time()) - age)
    assert response.status_code == 401 and error(response) == "invalid_signature"
    assert "300 s" in response.get_json()["error"]["message"]
    assert counts(services) == (0, 0)


def test_timestamps_inside_the_tolerance_pass(client, paid):
    assert post(client, paid, t=int(time.time()) - 250).status_code == 200


def test_the_tolerance_is_configurable(make_app, paid):
    strict = make_app(stripe_tolerance_seconds=10).test_client()
    assert post(strict, paid, t=int(time.time()) - 60).status_code == 401


@pytest.mark.parametrize("body, code", [
    (b"{not json", "malformed_body"),
    (b"\xff\xfe\x00", "malformed_body"),                     # not UTF-8
    (b"[]", "malformed_event"),
    (b'{"id": "evt_1"}', "malformed_event"),                 # no type, livemode, data
    (b'{"id": "evt_1", "type": "checkout.session.completed", "livemode": "no", "data": {"object": {}}}',
     "malformed_event"),
    (b'{"id": "evt_1", "type": "checkout.session.completed", "livemode": false, "data": {"object": {}}}',
     "malformed_event"),                                     # a session without an id
    (b'{"id": "evt_1", "type": "charge.refunded", "livemode": false, "data": {"object": {"id": "ch_1", '
     b'"amount": -5}}}', "malformed_event"),
    (b'{"id": "evt_1", "type": "payment_intent.succeeded", "livemode": false, "data": {"object": {"id": 5}}}',
     "malformed_event"),
])
def test_malformed_bodies_with_a_valid_signature_are_400(client, services, body, code):
    response = post(client, body)
    assert response.status_code == 400 and error(response) == code
    assert counts(services) == (0, 0)


def test_a_non_json_content_type_is_415(client, services, paid):
    response = post(client, paid, content_type="text/plain")
    assert response.status_code == 415
    assert counts(services) == (0, 0)


def test_a_body_over_the_limit_is_413(make_app, services, paid):
    small = make_app(max_body_bytes=200).test_client()
    response = post(small, paid)
    assert response.status_code == 413
    assert counts(services) == (0, 0)


def test_unknown_namespaces_are_404(client, services, paid):
    for path in ("/webhooks/stripe/nope", "/webhooks/stripe/"):
        response = post(client, paid, path=path)
        assert response.status_code == 404, path
    assert counts(services) == (0, 0)


def test_the_bare_path_serves_the_only_stripe_game(client, services, paid):
    assert post(client, paid, path="/webhooks/stripe").status_code == 200
    assert inbound(services)[0][0] == f"demo:{paid['id']}"


def test_get_is_405(client):
    assert client.get("/webhooks/stripe/demo").status_code == 405


def test_test_mode_events_need_a_game_that_allows_sandbox(make_app, services, catalog_path, tmp_path, paid):
    strict = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "c.toml", allow_sandbox="false"))
    response = post(strict.test_client(), paid)
    assert response.status_code == 422 and error(response) == "sandbox_not_allowed"
    assert counts(services) == (0, 0)


def test_the_database_down_is_503(make_app, paid):
    down = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none").test_client()
    response = post(down, paid)
    assert response.status_code == 503 and response.headers["Retry-After"]


# ---------------------------------------------------------------- good input: 200 once recorded
def test_secret_rotation_any_live_secret_verifies(make_app, services, catalog_path, tmp_path, stripe_fake):
    path = write_catalog(catalog_path, tmp_path / "c.toml",
                         webhook_secrets='["whsec_new_secret", "whsec_demo_test_secret"]')
    rotated = make_app(catalog_path=path).test_client()
    session = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_sword",
                                                                               "quantity": 1}])
    old, new, both = completed(session), completed(session), completed(session)
    assert post(rotated, old, secret=SECRET).status_code == 200
    assert post(rotated, new, secret="whsec_new_secret").status_code == 200
    # Stripe signs with every live secret during a rotation: one v1 per secret, any one may match
    body = body_of(both)
    t = int(time.time())
    header = sign(body, "whsec_retired", t) + "," + sign(body, "whsec_new_secret", t).split(",")[1]
    assert post(rotated, body, signature=header).status_code == 200
    assert post(rotated, completed(session), secret="whsec_retired").status_code == 401


def test_unknown_event_types_are_200_and_recorded_as_ignored(client, services, redis):
    ev = event("customer.created", {"id": "cus_1", "object": "customer"})
    response = post(client, ev)
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"
    assert inbound(services, ev["id"]) == [(f"demo:{ev['id']}", "ignored", "event type not acted on")]
    assert redis.llen("rq:queue:kb-fulfilment") == 0


def test_duplicates_are_200_and_change_nothing(client, services, redis, emulator, paid):
    first = post(client, paid)
    drain(redis)
    again = post(client, paid)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    drain(redis)
    assert counts(services) == (1, 1)
    assert balances(emulator)[0] == {"gems": 100}


def test_twenty_concurrent_deliveries_of_one_event_grant_once(app, services, redis, emulator, paid):
    body = body_of(paid)
    answers, barrier = [], threading.Barrier(20)

    def deliver():
        with app.test_client() as c:
            barrier.wait()
            answers.append(post(c, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 20
    drain(redis)
    assert counts(services) == (1, 1)
    assert balances(emulator)[0] == {"gems": 100}
    assert len(emulator.ledger()) == 1


def test_redis_down_still_answers_200_and_the_reconciler_enqueues(make_app, services, emulator, paid):
    from middleware.orders.reconciler import reconcile_now
    down = make_app(redis_url="redis://127.0.0.1:1/0")
    assert post(down.test_client(), paid).status_code == 200
    assert inbound(services)[0][1] == "pending"
    up = make_app()  # Redis is back
    svc = up.extensions["kraty_bridge"]
    assert reconcile_now(svc)["events"] == 1
    drain(svc.redis)
    assert order(services, paid["data"]["object"]["id"])["state"] == "FULFILLED"


def test_the_answer_says_what_was_recorded(client, paid):
    body = post(client, paid).get_json()
    assert body == {"received": True, "id": paid["id"], "duplicate": False, "sandbox": True, "outcome": "pending"}
    assert json.loads(json.dumps(body))
