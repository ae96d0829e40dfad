"""Request metrics: ``kb_http_request_seconds{route, method, status}`` in /metrics, by the URL rule (not the
raw path), a 500 too (the PgBouncer 500s of issue 16 showed in no metric)."""
from __future__ import annotations

import pytest

from middleware import ops

from tests.support.orders_flow import AUTH, fulfil_path
from tests.support.ops_ledger import key
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_metrics import BEARER, KEY, scrape, value

PUT_RULE = "/platform/v2/admin/namespaces/<namespace>/users/<user_id>/fulfillments/<transaction_id>"
GEMS = {"items": [{"itemSku": "gems_100", "quantity": 1}]}


@pytest.fixture
def metrics_app(make_app):  # noqa: F811
    app = make_app(metrics_key=KEY)
    app.config["TESTING"] = False  # an unhandled exception becomes the 500 production answers
    return app


def count(samples, route, method, status) -> float:
    return value(samples, "kb_http_request_seconds_count", route=route, method=method, status=str(status))


def test_requests_are_counted_and_timed_by_route_method_and_status(metrics_app, emulator):
    client = metrics_app.test_client()
    before = scrape(client)
    for n in range(3):
        assert client.put(fulfil_path(f"player-{n}", f"txn-http-{n}"), json=GEMS, headers=AUTH).status_code == 200
    assert client.put(fulfil_path("player-x", "txn-http-x"), json=GEMS).status_code == 401
    assert client.get("/no/such/path/for-player-42").status_code == 404
    after = scrape(client)
    rule = PUT_RULE  # the URL rule: no player or order id in a label
    assert count(after, rule, "PUT", 200) - count(before, rule, "PUT", 200) == 3
    assert count(after, rule, "PUT", 401) - count(before, rule, "PUT", 401) == 1
    assert count(after, "unmatched", "GET", 404) - count(before, "unmatched", "GET", 404) == 1
    assert not any("player-" in dict(labels).get("route", "") for (_name, labels) in after)
    # the latency histogram: buckets up to +Inf, and the sum of the times
    inf = value(after, "kb_http_request_seconds_bucket", route=rule, method="PUT", status="200", le="+Inf")
    assert inf == count(after, rule, "PUT", 200)
    assert value(after, "kb_http_request_seconds_sum", route=rule, method="PUT", status="200") > 0


def test_a_500_shows(metrics_app, monkeypatch):
    client = metrics_app.test_client()
    headers = key(metrics_app.extensions["kraty_bridge"], "viewer")
    before = scrape(client)

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ops, "list_fulfilments", broken)
    assert client.get("/v1/fulfilments", headers=headers).status_code == 500
    after = scrape(client)
    assert count(after, "/v1/fulfilments", "GET", 500) - count(before, "/v1/fulfilments", "GET", 500) == 1
    assert count(after, "/metrics", "GET", 200) >= 1  # the scrapes themselves
    assert client.get("/metrics", headers=BEARER).status_code == 200
