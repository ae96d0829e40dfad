"""The console at phone width (390 px, headless Chromium via Playwright): support finds an order by the
PaymentIntent id the customer quotes, opens it, reads the timeline's fields and opens the raw JSON, leaves a
note; on every page nothing spills out of the page sideways (wide tables scroll inside their card)."""
from __future__ import annotations

import os

import pytest

from middleware.ledger import api_keys
from middleware.ledger.models import PaymentRef, utcnow
from tests.support.ops_ledger import audit_entries, fulfilled_order
from tests.test_console_browser import CHROMIUM, app, served  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)")]
WIDTH = 390
NOTE = "Customer wrote in twice about this one"


def overflow(page) -> int:
    """How far the page is wider than the viewport (0: nothing spills out sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_support_at_phone_width(client, services, emulator, served):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (requirements-dev.txt)")
    fulfilment_id = fulfilled_order(client, services, txn="a-rather-long-transaction-id-0123456789abcdef",
                                    user="player-with-a-long-id-0123456789")
    with services.session() as session:
        session.add(PaymentRef(source="stripe", ref="pi_3PhoneWidthTest0001", fulfilment_id=fulfilment_id,
                               created_at=utcnow()))
        key = api_keys.create(session, "support-bo", "viewer")
        session.commit()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 844}, is_mobile=True)
            page.set_default_timeout(10_000)
            expect = sync_api.expect
            page.goto(f"{served.url}/console/sign-in")
            page.fill("#key", key)
            page.click("button:has-text('Sign in')")
            expect(page.locator("#count-failed")).to_be_visible()
            assert overflow(page) <= 0, "the home page is wider than the phone"

            page.fill("#q", "pi_3PhoneWidthTest0001")
            page.click("form.search button[type=submit]")
            expect(page.locator("table.orders")).to_contain_text("payment id")
            assert overflow(page) <= 0, "the search results are wider than the phone"
            page.click(f"a[href='/console/orders/{fulfilment_id}']")
            expect(page.locator("h1 .state")).to_have_text("FULFILLED")
            assert overflow(page) <= 0, "the order page is wider than the phone"
            fields = page.locator("ol.timeline dl.fields").first
            expect(fields).to_contain_text("event")
            raw = page.locator("ol.timeline details.detail").first
            expect(raw.locator("pre.json")).to_be_hidden()
            raw.locator("summary").click()
            expect(raw.locator("pre.json")).to_be_visible()

            page.locator("section.notes textarea[name=note]").fill(NOTE)
            page.click("section.notes button[type=submit]")
            expect(page.locator("p.flash.ok")).to_contain_text("Note added")
            expect(page.locator("section.notes")).to_contain_text(NOTE)

            for path in ("/console/players/demo/player-with-a-long-id-0123456789", "/console/audit",
                         "/console/queue", "/console/sinks"):
                page.goto(f"{served.url}{path}")
                expect(page.locator("h1")).to_be_visible()
                assert overflow(page) <= 0, f"{path} is wider than the phone"
        finally:
            browser.close()
    [note] = [e for e in audit_entries(services, fulfilment_id) if e.action == "note"]
    assert (note.actor, note.reason) == ("console:support-bo", NOTE)
