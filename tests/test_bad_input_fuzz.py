"""Bad input found by fuzzing (schemathesis on /openapi.json, and by hand: odd path parameters, query values,
JSON bodies, console forms) that answered 500: each now gets its 4xx, in the error shape of its API family,
and changes nothing in the ledger or in Kraty."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from middleware.ledger.models import table_names_children_first

from tests.support.ops_ledger import fulfilled_order, key
from tests.test_console import app, csrf_of, sign_in  # noqa: F401  (app: the console's fixture, with a secret key)
from tests.support.sink_receiver import CRM_SECRET

JSON = "application/json"
DEEP_ARRAY = "[" * 5000 + "]" * 5000                                          # RecursionError in json.loads
DEEP_OBJECT = '{"reason": "x", "contents": [' + '{"a": ' * 3000 + "1" + "}" * 3000 + "]}"
LONG_INT = '{"reason": "x", "contents": [{"currencyKey": "gems", "amount": ' + "9" * 5000 + "}]}"  # > 4300 digits
NUL, SURROGATE = "x\u0000y", "x\ud800y"   # PostgreSQL text refuses NUL; UTF-8 cannot encode a lone surrogate
YEAR_1_EAST, YEAR_9999_WEST = "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"   # no UTC for these


def body(**fields) -> dict:
    return {"data": json.dumps(fields), "content_type": JSON}   # json.dumps escapes: "\u0000", "\ud800"


# (surface, method, path ({order}: a FULFILLED order's id), request keyword arguments, status, error code)
CASES = {
    # /v1: NUL in a path parameter reached PostgreSQL
    "v1 order id with NUL": ("v1", "get", "/v1/fulfilments/a%00b", {}, 400, "bad_request"),
    "v1 player id with NUL": ("v1", "get", "/v1/players/a%00b", {}, 400, "bad_request"),
    "v1 retry on an id with NUL": ("v1", "post", "/v1/fulfilments/a%00b/actions/retry", body(reason="r"), 400,
                                   "bad_request"),
    "v1 delivery id with NUL": ("v1", "post", "/v1/sinks/crm/deliveries/a%00b/replay", body(reason="r"), 400,
                                "bad_request"),
    # /v1: NUL in a query filter
    "v1 transactionId with NUL": ("v1", "get", "/v1/fulfilments", {"query_string": {"transactionId": NUL}}, 400,
                                  "bad_request"),
    "v1 sku with NUL": ("v1", "get", "/v1/fulfilments", {"query_string": {"sku": NUL}}, 400, "bad_request"),
    "v1 audit targetId with NUL": ("v1", "get", "/v1/audit", {"query_string": {"targetId": NUL}}, 400,
                                   "bad_request"),
    "v1 audit actor with NUL": ("v1", "get", "/v1/audit", {"query_string": {"actor": NUL}}, 400, "bad_request"),
    "v1 audit action with NUL": ("v1", "get", "/v1/audit", {"query_string": {"action": NUL}}, 400, "bad_request"),
    # /v1: unstorable text in a JSON body (make-good wrote its audit entry; the sink replay had replayed)
    "v1 make-good reason with NUL": ("v1", "post", "/v1/fulfilments/{order}/actions/make-good",
                                     body(reason=NUL, contents=[{"currencyKey": "gems", "amount": 1}]), 400,
                                     "bad_request"),
    "v1 make-good reason with a lone surrogate": ("v1", "post", "/v1/fulfilments/{order}/actions/make-good",
                                                  body(reason=SURROGATE, contents=[{"currencyKey": "gems",
                                                                                    "amount": 1}]),
                                                  400, "bad_request"),
    "v1 sink replay reason with NUL": ("v1", "post", "/v1/sinks/crm/replay",
                                       body(reason=NUL, since="2026-01-01T00:00:00Z"), 400, "bad_request"),
    "v1 sink replay reason with a lone surrogate": ("v1", "post", "/v1/sinks/crm/replay",
                                                    body(reason=SURROGATE, since="2026-01-01T00:00:00Z"), 400,
                                                    "bad_request"),
    # /v1: JSON that Python's decoder gives up on (not a JSONDecodeError, so webargs let it through)
    "v1 JSON nested too deep": ("v1", "post", "/v1/fulfilments/{order}/actions/retry",
                                {"data": DEEP_ARRAY, "content_type": JSON}, 400, "bad_request"),
    "v1 JSON object nested too deep": ("v1", "post", "/v1/receipts/app-store",
                                       {"data": DEEP_OBJECT, "content_type": JSON}, 400, "bad_request"),
    "v1 JSON integer of 5000 digits": ("v1", "post", "/v1/fulfilments/{order}/actions/make-good",
                                       {"data": LONG_INT, "content_type": JSON}, 400, "bad_request"),
    # /v1: a time with an offset that has no UTC equivalent
    "v1 createdAfter year 1 at +14:00": ("v1", "get", "/v1/fulfilments", {"query_string": {"createdAfter":
                                                                                          YEAR_1_EAST}},
                                         422, "validation_failed"),
    "v1 audit before 9999 at -14:00": ("v1", "get", "/v1/audit", {"query_string": {"before": YEAR_9999_WEST}}, 422,
                                       "validation_failed"),
    # the console (signed in, with the CSRF token)
    "console search with NUL": ("console", "get", "/console/", {"query_string": {"q": NUL}}, 400, None),
    "console order id with NUL": ("console", "get", "/console/orders/a%00b", {}, 400, None),
    "console action on an id with NUL": ("console", "post", "/console/orders/a%00b/actions/retry",
                                         {"data": {"reason": "r"}}, 400, None),
    "console delivery id with NUL": ("console", "post", "/console/sinks/crm/deliveries/a%00b/replay",
                                     {"data": {"reason": "r"}}, 400, None),
    "console make-good reason with NUL": ("console", "post", "/console/orders/{order}/actions/make-good",
                                          {"data": {"reason": NUL, "contents": "currency gems 1"}}, 400, None),
    "console make-good amount in superscript": ("console", "post", "/console/orders/{order}/actions/make-good",
                                                {"data": {"reason": "r", "contents": "currency gems ²"}}, 422,
                                                None),
    "console sink replay reason with NUL": ("console", "post", "/console/sinks/crm/replay",
                                            {"data": {"reason": NUL, "since": "2026-01-01T00:00"}}, 400, None),
    "console sink replay since year 1 at +14:00": ("console", "post", "/console/sinks/crm/replay",
                                                   {"data": {"reason": "r", "since": YEAR_1_EAST}}, 422, None),
    # the AccelByte-compatible query and the App Store webhook
    "accelbyte query userId with NUL": ("platform", "get", "/platform/v2/admin/namespaces/demo/fulfillments",
                                        {"query_string": {"userId": NUL}}, 400, 20002),
    "accelbyte query transactionId with NUL": ("platform", "get", "/platform/v2/admin/namespaces/demo/fulfillments",
                                               {"query_string": {"transactionId": NUL}}, 400, 20002),
    "app store webhook JSON nested too deep": ("webhook", "post", "/webhooks/app-store",
                                               {"data": DEEP_ARRAY, "content_type": JSON}, 400, "malformed_body"),
}


@pytest.fixture(scope="module")
def sinks_path(tmp_path_factory) -> str:
    sinks = tmp_path_factory.mktemp("sinks") / "sinks.toml"   # never called: nothing is delivered in these tests
    sinks.write_text(f'[sinks.crm]\nurl = "http://127.0.0.1:9/crm"\nsecret = "{CRM_SECRET}"\nschedule = [0]\n')
    return str(sinks)


@pytest.fixture
def settings_overrides(settings_overrides, sinks_path):
    """One sinks file for the module: the same settings for every test, so one app (tests/support/app_cache.py)."""
    return {**settings_overrides, "sinks_path": sinks_path}


def snapshot(services) -> dict:
    """Every row of every table but the API keys (made by the test itself), in a stable order."""
    with services.engine.connect() as connection:
        return {table: sorted(map(repr, connection.execute(text(f"SELECT * FROM {table}"))))
                for table in table_names_children_first() if table != "api_keys"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_its_4xx_and_changes_nothing(case, client, services, emulator):
    surface, method, path, kwargs, status, code = CASES[case]
    order = fulfilled_order(client, services, txn="fuzz-seed")
    kwargs = dict(kwargs)
    headers = {}
    if surface == "v1":
        headers = key(services, "admin")
    elif surface == "platform":
        headers = {"Authorization": "Bearer demo-storefront-token"}
    elif surface == "console":
        sign_in(client, services, "admin")
        if method == "post":
            kwargs["data"] = {"csrf_token": csrf_of(client.get("/console/")), **kwargs["data"]}
    ledger, kraty = snapshot(services), emulator.ledger()

    response = getattr(client, method)(path.format(order=order), headers=headers, **kwargs)

    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    if surface == "console":
        assert response.mimetype == "text/html"
    else:
        assert response.mimetype == JSON
        answer = response.get_json()
        if surface == "platform":
            assert set(answer) <= {"errorCode", "errorMessage", "messageVariables"} and answer["errorCode"] == code
        else:
            error = answer["error"]
            assert set(answer) == {"error"} and set(error) <= {"code", "message", "requestId", "details"}
            assert error["code"] == code and error["message"]
            assert error["requestId"] == response.headers["X-Request-Id"]
    assert snapshot(services) == ledger, "the database changed"
    assert emulator.ledger() == kraty, "Kraty's ledger changed"


def test_openapi_documents_our_error_shape(client):
    """schemathesis's response-schema check failed on every error: the spec described flask-smorest's own
    {code, status, message, errors}, not {"error": {code, message, requestId, details?}}."""
    spec = client.get("/openapi.json").get_json()
    for name in ("DEFAULT_ERROR", "UNPROCESSABLE_ENTITY"):
        assert spec["components"]["responses"][name]["content"][JSON]["schema"] == {"$ref": "#/components/schemas/Error"}
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]) == {"error"}
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "requestId", "details"}
    assert set(detail["required"]) == {"code", "message"}
