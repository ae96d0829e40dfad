"""The console in a real browser (headless Chromium driven by Playwright) against the app served on loopback:
support's "gems never arrived" walkthrough — sign in, find the player, open the failed order, retry it with a
reason, see FULFILLED — with a screenshot in the test's tmp dir; docs/console.png (the README's copy) is written
when missing, or refreshed with UPDATE_CONSOLE_SCREENSHOT=1.

Needs Debian's ``chromium`` (/usr/bin/chromium); without it the test is skipped and says so.
"""
from __future__ import annotations

import os
import shutil

import pytest

from app import create_app
from config.settings import ROOT
from middleware.ledger import api_keys
from workers import runtime

from tests.conftest import Served
from tests.support.orders_flow import put_order
from tests.support.ops_ledger import audit_entries, order_id, state
from tests.support.stripe_events import balances

CHROMIUM = "/usr/bin/chromium"
SECRET = "console-browser-secret-0123456789abcdef"
PLAYER = "player-7"
REASON = "Ticket 4711: paid for 100 gems, they never arrived"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} is missing: apt-get install chromium (Debian's package) to run "
                                        "the console's browser test")]


@pytest.fixture
def app(settings_overrides, clean):
    app = create_app({**settings_overrides, "secret_key": SECRET})
    runtime.use(app)
    yield app
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


@pytest.fixture
def served(app):
    server = Served(app)
    yield server
    server.stop()


def gems_never_arrived(client, emulator, services) -> str:
    """An order for 100 gems, FULFILL_FAILED: Kraty refused the wallet credit (a since-fixed config problem)."""
    emulator.faults({"path": "/wallet/gems/credit", "status": 400, "code": "validation_failed",
                     "message": "currency gems is not enabled for this game"})
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="gp-order-4711", user=PLAYER)
    assert response.get_json()["state"] == "FULFILL_FAILED", response.get_json()
    emulator.clear_faults()
    return order_id(services, "gp-order-4711")


def test_gems_never_arrived_walkthrough(app, client, services, emulator, served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (requirements-dev.txt)")
    fulfilment_id = gems_never_arrived(client, emulator, services)
    with services.session() as session:
        key = api_keys.create(session, "support-alice", "operator")
        session.commit()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(10_000)
            expect = sync_api.expect

            page.goto(f"{served.url}/console/")                      # not signed in: the sign-in page
            expect(page).to_have_url(f"{served.url}/console/sign-in?next=/console/?")
            page.fill("#key", key)
            page.click("button:has-text('Sign in')")
            expect(page.locator("header .who")).to_contain_text("support-alice · operator")

            page.fill("#q", PLAYER)                                    # find the player
            page.click("form.search button[type=submit]")
            page.click("a.player-link")
            expect(page.locator("h1")).to_contain_text(PLAYER)
            expect(page.locator("table.orders")).to_contain_text("FULFILL_FAILED")

            page.click(f"a[href='/console/orders/{fulfilment_id}']")  # open the failed order
            expect(page.locator("h1 .state")).to_have_text("FULFILL_FAILED")
            expect(page.locator("table.items")).to_contain_text("currency gems is not enabled")

            retry = page.locator(f"form[action='/console/orders/{fulfilment_id}/actions/retry']")
            page.click("details.action summary:has-text('Retry')")    # retry, saying why
            retry.locator("textarea[name=reason]").fill(REASON)
            retry.locator("button[type=submit]").click()

            expect(page.locator("p.flash.ok")).to_contain_text("Retry done: the order is FULFILLED now")
            expect(page.locator("h1 .state")).to_have_text("FULFILLED")
            expect(page.locator("ol.timeline")).to_contain_text(REASON)
            shot = tmp_path / "console.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert shot.stat().st_size > 10_000
    kept = ROOT / "docs" / "console.png"   # the README's copy: made when missing, refreshed on request only
    if not kept.exists() or os.environ.get("UPDATE_CONSOLE_SCREENSHOT"):
        shutil.copyfile(shot, kept)
    assert state(services, fulfilment_id) == "FULFILLED"
    assert balances(emulator, PLAYER) == ({"gems": 100}, {})
    [entry] = audit_entries(services, fulfilment_id)
    assert (entry.actor, entry.action, entry.reason) == ("console:support-alice", "retry", REASON)


def test_docs_page_renders_offline(served):
    """/docs in Chromium with every request off loopback refused: Swagger UI renders our operations."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (requirements-dev.txt)")
    elsewhere = []

    def only_loopback(route):
        if route.request.url.startswith(served.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{served.url}/docs")
            sync_api.expect(page.locator(".opblock-summary-path", has_text="/v1/receipts/app-store")
                            ).to_be_visible(timeout=15_000)
            sync_api.expect(page.locator(".info .title")).to_contain_text("kraty-bridge")
        finally:
            browser.close()
    assert elsewhere == []
