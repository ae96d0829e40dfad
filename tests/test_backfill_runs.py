"""``flask backfill google-play`` (the voided-purchases poll over a chosen window) and the reconciler's
periodic backfill pass (KB_BACKFILL_INTERVAL_SECONDS): each store's history read from where the last
pass ended, a failing store tried again from the same point."""
from __future__ import annotations

import requests

from config import embedded
from emulator.app_store_api import mount_app_store
from middleware.ledger.models import StoreCursor
from middleware.stores import backfill

from tests.support.app_store_api import apple_api, apple_api_url, make_apple, player, signed  # noqa: F401  (fixtures)
from tests.support.wsgi_server import emulator_with
from tests.support.google_play import certs_server, google, make_app  # noqa: F401  (fixtures)
from tests.support.orders_flow import drain
from tests.support.stripe_events import balances


def test_backfill_google_play_reads_the_voided_purchases_since(google, redis, emulator, google_fake):
    p = google_fake.product(productId="gems_100", quantity=1)
    google.receipt("player-1", "gems_100", p["token"])
    google_fake.void(p["token"])
    result = google.app.test_cli_runner().invoke(args=["backfill", "google-play", "--since", "2020-01-01T00:00Z"])
    assert result.exit_code == 0 and "google-play: gap 1 of 1 event(s)" in result.output, result.output
    drain(redis)
    assert balances(emulator)[0] == {"gems": 0}
    again = google.app.test_cli_runner().invoke(args=["backfill", "google-play"])
    assert "google-play: gap 0 of 1 event(s)" in again.output


def cursor(services, store: str) -> StoreCursor | None:
    with services.session() as session:
        return session.get(StoreCursor, f"backfill:{store}")


def test_the_reconciler_pass_runs_when_due_and_resumes(make_app, catalog_path, tmp_path, apple_api, redis,
                                                       emulator, stripe_fake):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    svc = a.services
    assert backfill.run_due(svc) == []  # KB_BACKFILL_INTERVAL_SECONDS=0: off
    svc.settings = svc.settings.replace(backfill_interval_seconds=3600)
    apple_api.sent(signed("ONE_TIME_CHARGE", "2000000000000501", player()))
    apple_api.faults({"path": "/sandbox/inApps/v1/notifications/history", "status": 500, "count": 1})
    first = {r["store"]: r for r in backfill.run_due(svc)}
    assert "error" in first["app-store"]["games"][0] and cursor(svc, "app-store") is None  # tried again next time
    assert first["stripe"]["gap"] == 0 and cursor(svc, "stripe") is not None
    second = {r["store"]: r for r in backfill.run_due(svc)}
    assert list(second) == ["app-store"] and second["app-store"]["gap"] == 1  # stripe is not due yet
    drain(redis)
    assert backfill.run_due(svc) == []


def test_make_run_points_the_app_store_api_at_the_emulators_fake(tmp_path):
    env = embedded.child_environment({}, tmp_path, 8123)
    assert (env["KB_APPLE_API_BASE"], env["KB_APPLE_SANDBOX_API_BASE"]) == (
        "http://127.0.0.1:8123/apple/production", "http://127.0.0.1:8123/apple/sandbox")
    assert embedded.child_environment({"KB_APPLE_API_BASE": "https://x.test"}, tmp_path, 8123)[
        "KB_APPLE_API_BASE"] == "https://x.test"
    with emulator_with(mount_app_store) as (url, _fake):
        response = requests.post(f"{url}/apple/sandbox/inApps/v1/notifications/history", json={}, timeout=10)
        assert response.status_code == 401  # served, and the bearer token is checked
        assert requests.get(f"{url}/apple/_apple/consumption", timeout=10).json() == {"requests": []}
