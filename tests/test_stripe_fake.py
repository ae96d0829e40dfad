"""The fake Stripe API, driven through the real ``stripe`` library the way kraty-bridge calls it."""
# ruff: noqa: F811  (the fixtures imported below are test parameters)
from __future__ import annotations

import pytest
import requests
import stripe

from emulator.faults import ConnectionDropped
from emulator.stripe_api import create_stripe_app, mount_stripe
from emulator.stripe_store import StripeStore

from tests.support.wsgi_server import emulator_process, emulator_with
from tests.support.stripe_fake import StripeFake, stripe_api_url, stripe_fake  # noqa: F401

LINE = {"price": "price_gems_100", "product": "prod_gems", "lookup_key": "gems_100",
        "quantity": 2, "unit_amount": 499}


def exercise_four_calls(fake: StripeFake) -> None:
    client = fake.client()
    made = fake.session(line_items=[LINE], client_reference_id="player-1")
    session = client.v1.checkout.sessions.retrieve(made["id"], params={"expand": ["line_items"]})
    assert session.line_items.data[0].price.lookup_key == "gems_100"
    page = client.v1.checkout.sessions.line_items.list(made["id"], params={"limit": 100})
    assert [i.id for i in page.data] == [i["id"] for i in made["line_items"]["data"]]
    listed = client.v1.checkout.sessions.list(params={"payment_intent": made["payment_intent"],
                                                      "limit": 10})
    assert [s.id for s in listed.data] == [made["id"]]
    intent = client.v1.payment_intents.retrieve(made["payment_intent"])
    assert intent.amount == 998 and intent.status == "succeeded"


def test_retrieve_with_and_without_expand(stripe_fake):
    made = stripe_fake.session(line_items=[LINE] * 12, metadata={"player_id": "p1"},
                               client_reference_id="p1",
                               payment_intent_metadata={"player_id": "p1"})
    assert made["id"].startswith("cs_test_") and made["payment_intent"].startswith("pi_")
    client = stripe_fake.client()
    plain = client.v1.checkout.sessions.retrieve(made["id"])
    assert "line_items" not in plain
    expected = {"object": "checkout.session", "mode": "payment", "payment_status": "paid",
                "status": "complete", "livemode": False, "amount_total": 12 * 998,
                "currency": "usd", "client_reference_id": "p1", "customer": None}
    assert {k: plain[k] for k in expected} == expected
    assert plain.metadata.to_dict() == {"player_id": "p1"} and isinstance(plain.created, int)

    session = client.v1.checkout.sessions.retrieve(made["id"], params={"expand": ["line_items"]})
    items = session.line_items
    assert items.object == "list" and len(items.data) == 10 and items.has_more is True
    assert items.url == f"/v1/checkout/sessions/{made['id']}/line_items"
    item = items.data[0].to_dict()
    assert item["object"] == "item" and item["id"].startswith("li_")
    assert (item["quantity"], item["amount_subtotal"], item["amount_total"]) == (2, 998, 998)
    assert item["price"] == {**item["price"], "id": "price_gems_100", "object": "price",
                             "product": "prod_gems", "lookup_key": "gems_100", "unit_amount": 499,
                             "currency": "usd", "type": "one_time"}
    assert len(list(items.auto_paging_iter())) == 12  # the lib follows `url` for the next pages

    intent = client.v1.payment_intents.retrieve(made["payment_intent"])
    assert intent.object == "payment_intent" and intent.amount == 12 * 998
    assert intent.latest_charge.startswith("ch_")
    assert intent.metadata.to_dict() == {"player_id": "p1"}
    assert intent.livemode is False and intent.currency == "usd"


def test_pagination_250_line_items(stripe_fake):
    lines = [{"price": f"price_{n}", "quantity": 1, "unit_amount": n} for n in range(250)]
    made = stripe_fake.session(line_items=lines)
    expected = [i["id"] for i in made["line_items"]["data"]]
    assert made["amount_total"] == sum(range(250)) and len(set(expected)) == 250
    client, seen, pages, after = stripe_fake.client(), [], [], None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        page = client.v1.checkout.sessions.line_items.list(made["id"], params=params)
        pages.append((len(page.data), page.has_more))
        seen += [i.id for i in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert pages == [(100, True), (100, True), (50, False)] and seen == expected
    assert [i.price.unit_amount for i in client.v1.checkout.sessions.line_items.list(
        made["id"], params={"limit": 3, "starting_after": expected[9]}).data] == [10, 11, 12]
    before = client.v1.checkout.sessions.line_items.list(
        made["id"], params={"limit": 5, "ending_before": expected[7]})
    assert [i.id for i in before.data] == expected[2:7] and before.has_more is True
    default = client.v1.checkout.sessions.line_items.list(made["id"])
    assert len(default.data) == 10 and default.has_more is True


def test_list_sessions_by_payment_intent(stripe_fake):
    first = stripe_fake.session(line_items=[LINE])
    second = stripe_fake.session(line_items=[LINE], payment_intent=first["payment_intent"])
    other = stripe_fake.session(line_items=[LINE])
    client = stripe_fake.client()
    listed = client.v1.checkout.sessions.list(params={"payment_intent": first["payment_intent"],
                                                      "limit": 10})
    assert [s.id for s in listed.data] == [second["id"], first["id"]]  # newest first
    assert listed.has_more is False and listed.url == "/v1/checkout/sessions"
    assert "line_items" not in listed.data[0]
    one = client.v1.checkout.sessions.list(params={"payment_intent": other["payment_intent"],
                                                   "limit": 1, "expand": ["data.line_items"]})
    assert [s.id for s in one.data] == [other["id"]] and len(one.data[0].line_items.data) == 1
    assert client.v1.checkout.sessions.list(params={"payment_intent": "pi_nope"}).data == []


def test_explicit_ids_null_intent_and_expanded_intent(stripe_fake):
    intent = stripe_fake.payment_intent(id="pi_given", amount=700, metadata={"k": "v"},
                                        status="processing")
    assert intent["latest_charge"].startswith("ch_") and intent["status"] == "processing"
    made = stripe_fake.session(id="cs_test_given", payment_intent="pi_given", line_items=[LINE])
    free = stripe_fake.session(payment_intent=None, payment_status="no_payment_required")
    client = stripe_fake.client()
    session = client.v1.checkout.sessions.retrieve(made["id"],
                                                   params={"expand": ["payment_intent"]})
    assert session.payment_intent.id == "pi_given" and session.payment_intent.amount == 700
    assert client.v1.checkout.sessions.retrieve(free["id"]).payment_intent is None
    assert free["amount_total"] == 0 and free["line_items"]["data"] == []


def test_unknown_id_is_404(stripe_fake):
    client = stripe_fake.client()
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.retrieve("cs_x")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert err.value.user_message == "No such checkout.session: 'cs_x'"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.retrieve("pi_x")
    assert err.value.http_status == 404 and err.value.param == "intent"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.line_items.list("cs_x")
    assert err.value.http_status == 404


def test_modes_are_separate(stripe_fake):
    live = stripe_fake.session(livemode=True, line_items=[LINE])
    assert live["id"].startswith("cs_live_") and live["livemode"] is True
    session = stripe_fake.client("sk_live_abc").v1.checkout.sessions.retrieve(live["id"])
    assert session.livemode is True
    assert stripe_fake.client("rk_live_abc").v1.payment_intents.retrieve(
        live["payment_intent"]).livemode is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_fake.client("sk_test_abc").v1.checkout.sessions.retrieve(live["id"])
    assert err.value.http_status == 404 and "exists in live mode" in err.value.user_message
    assert stripe_fake.client("sk_test_abc").v1.checkout.sessions.list(
        params={"payment_intent": live["payment_intent"]}).data == []


@pytest.mark.parametrize("params, param", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"),
    ({"starting_after": "li_nope"}, "starting_after"), ({"foo": "bar"}, "foo"),
    ({"expand": ["data.price.product"]}, "expand")])
def test_bad_params_are_400(stripe_fake, params, param):
    made = stripe_fake.session(line_items=[LINE])
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_fake.client().v1.checkout.sessions.line_items.list(made["id"], params=params)
    assert err.value.http_status == 400 and err.value.param == param


@pytest.mark.parametrize("key", ["sk_nope", "pk_test_abc", ""])
def test_bad_key_is_401(stripe_fake, key):
    made = stripe_fake.session(line_items=[LINE])
    with pytest.raises(stripe.AuthenticationError) as err:
        stripe_fake.client(key).v1.checkout.sessions.retrieve(made["id"])
    assert err.value.http_status == 401
    assert err.value.json_body["error"]["type"] == "invalid_request_error"


def test_configured_keys_only():
    app = create_stripe_app({"api_keys": ["sk_test_only", "my_key"]})
    http = app.test_client()
    made = http.post("/_stripe/checkout_sessions", json={"line_items": [LINE]}).get_json()
    path = f"/v1/checkout/sessions/{made['id']}"
    assert http.get(path, headers={"Authorization": "Bearer sk_test_only"}).status_code == 200
    assert http.get(path, headers={"Authorization": "Bearer my_key"}).status_code == 200
    refused = http.get(path, headers={"Authorization": "Bearer sk_test_other"})
    assert refused.status_code == 401 and refused.get_json()["error"]["message"].startswith(
        "Invalid API Key provided")
    assert http.get(path).status_code == 401
    with pytest.raises(ValueError):
        create_stripe_app({"api_keys": "sk_test_x"})


def test_fault_503_then_recovers(stripe_fake):
    made = stripe_fake.session(line_items=[LINE])
    stripe_fake.faults({"path": "^/v1/checkout/sessions/", "method": "GET", "status": 503,
                        "count": 1})
    client = stripe_fake.client()
    with pytest.raises(stripe.APIError) as err:
        client.v1.checkout.sessions.retrieve(made["id"])
    assert err.value.http_status == 503 and err.value.json_body["error"]["type"] == "api_error"
    assert client.v1.checkout.sessions.retrieve(made["id"]).id == made["id"]


def test_fault_429_and_404(stripe_fake):
    made = stripe_fake.session(line_items=[LINE])
    stripe_fake.faults({"path": "/line_items$", "status": 429, "retry_after": 3},
                       {"path": "^/v1/payment_intents/", "status": 404})
    client = stripe_fake.client()
    with pytest.raises(stripe.RateLimitError) as err:
        client.v1.checkout.sessions.line_items.list(made["id"])
    assert err.value.http_status == 429 and err.value.headers["Retry-After"] == "3"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.retrieve(made["payment_intent"])
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert client.v1.checkout.sessions.retrieve(made["id"]).id == made["id"]  # rule path differs
    stripe_fake.clear_faults()
    assert client.v1.payment_intents.retrieve(made["payment_intent"]).id == made["payment_intent"]


def test_fault_drop_closes_the_connection(stripe_fake):
    made = stripe_fake.session(line_items=[LINE])
    stripe_fake.faults({"path": "^/v1/", "drop": True, "count": 1})
    client = stripe_fake.client()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.checkout.sessions.retrieve(made["id"])
    assert client.v1.checkout.sessions.retrieve(made["id"]).id == made["id"]
    assert [r["status"] for r in stripe_fake.requests()] == ["dropped", 200]
    http = create_stripe_app().test_client()  # no socket to close: an exception instead
    http.put("/_stripe/faults", json={"rules": [{"drop": True}]})
    with pytest.raises(ConnectionDropped):
        http.get("/v1/payment_intents/pi_x", headers={"Authorization": "Bearer sk_test_x"})


def test_bad_fault_rules_and_admin_bodies_are_400(stripe_fake):
    admin = f"{stripe_fake.url}/_stripe"
    stripe_fake.session(id="cs_test_dup")
    for method, path, body in [
            ("PUT", "/faults", {"rules": [{"path": "("}]}), ("PUT", "/faults", {"rules": [{}]}),
            ("POST", "/checkout_sessions", {"line_items": [{"quantity": 0}]}),
            ("POST", "/checkout_sessions", {"nope": 1}),
            ("POST", "/checkout_sessions", {"payment_status": "maybe"}),
            ("POST", "/payment_intents", {"currency": "usd"}),
            ("PATCH", "/checkout_sessions/cs_test_dup", {"status": "nope"})]:
        response = requests.request(method, admin + path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    again = requests.post(f"{admin}/checkout_sessions", json={"id": "cs_test_dup"})
    assert again.status_code == 400 and again.json()["error"]["param"] == "id"


def test_admin_patch_fixes_a_session(stripe_fake):
    made = stripe_fake.session(line_items=[LINE], metadata={"a": "1", "b": "2"})
    updated = stripe_fake.update_session(made["id"], metadata={"b": "", "player_id": "p9"},
                                         client_reference_id="p9")
    assert updated["metadata"] == {"a": "1", "player_id": "p9"}
    session = stripe_fake.client().v1.checkout.sessions.retrieve(made["id"])
    assert session.client_reference_id == "p9" and session.metadata.to_dict() == updated["metadata"]
    stripe_fake.update_session(made["id"], payment_status="unpaid", status="open")
    session = stripe_fake.client().v1.checkout.sessions.retrieve(made["id"])
    assert (session.payment_status, session.status) == ("unpaid", "open")
    with pytest.raises(AssertionError, match="404"):
        stripe_fake.update_session("cs_nope", client_reference_id="x")


def test_same_price_keeps_its_product(stripe_fake):
    first = stripe_fake.session(line_items=[{"price": "price_p", "unit_amount": 250}])
    second = stripe_fake.session(line_items=[{"price": "price_p", "quantity": 3}])
    a, b = first["line_items"]["data"][0]["price"], second["line_items"]["data"][0]["price"]
    assert a["product"].startswith("prod_") and a["product"] == b["product"]
    assert b["unit_amount"] == 250 and second["amount_total"] == 750


def test_request_log_and_reset(stripe_fake):
    made = stripe_fake.session(line_items=[LINE])
    client = stripe_fake.client()
    client.v1.checkout.sessions.retrieve(made["id"], params={"expand": ["line_items"]})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve("pi_missing")
    log = stripe_fake.requests()
    assert log == [
        {"method": "GET", "path": f"/v1/checkout/sessions/{made['id']}",
         "query": {"expand[0]": "line_items"}, "status": 200},
        {"method": "GET", "path": "/v1/payment_intents/pi_missing", "query": {}, "status": 404}]
    stripe_fake.reset()
    assert stripe_fake.requests() == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve(made["id"])


def test_unknown_url_is_a_stripe_404(stripe_fake):
    response = requests.post(f"{stripe_fake.url}/v1/checkout/sessions",
                             headers={"Authorization": "Bearer sk_test_x"})
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (POST:")
    assert response.headers["Request-Id"].startswith("req_")


def test_mounted_under_a_prefix_next_to_the_kraty_emulator():
    with emulator_with(mount_stripe) as (url, stripe_app):
        assert isinstance(stripe_app.extensions["stripe_fake"].store, StripeStore)
        fake = StripeFake(f"{url}/stripe")
        exercise_four_calls(fake)
        assert [r["path"] for r in fake.requests()][-1].startswith("/v1/payment_intents/")
        assert requests.get(f"{url}/_emulator/health").json()["ok"] is True
        assert requests.get(f"{url}/stripe/_emulator/health").status_code == 404
        assert requests.get(f"{url}/v1/payment_intents/pi_x").status_code == 404


@pytest.mark.processes
def test_python_m_emulator_serves_the_fake_under_stripe():
    with emulator_process() as url:
        exercise_four_calls(StripeFake(f"{url}/stripe"))
