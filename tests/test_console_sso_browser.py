"""Single sign-on in a real browser (Debian's Chromium via Playwright): the console served on loopback, the test
OpenID provider (tests/support/oidc_provider.py) on another port. Sign in through the provider, land on the page
asked for, act as the person, sign out, and the old cookie copied into a fresh browser finds nothing."""
from __future__ import annotations

import os

import pytest

from app import create_app
from workers import runtime

from tests.conftest import Served
from tests.support.oidc_provider import served
from tests.test_console_sso import CLIENT_ID, CLIENT_SECRET, sso_settings

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)")]


@pytest.fixture
def provider():
    with served(CLIENT_ID, CLIENT_SECRET) as op:
        yield op


@pytest.fixture
def console(settings_overrides, clean, provider):
    app = create_app({**settings_overrides, **sso_settings(provider)})
    runtime.use(app)
    server = Served(app)
    yield server
    server.stop()
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def test_sign_in_through_the_provider_and_out_again(console, provider):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (requirements-dev.txt)")
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{console.url}/console/queue")                      # not signed in: the sign-in page
            expect(page).to_have_url(f"{console.url}/console/sign-in?next=/console/queue?")
            page.click("#sso")                                             # off to the provider and back
            expect(page).to_have_url(f"{console.url}/console/queue")
            expect(page.locator("header .who")).to_contain_text("alice@example.com · operator")
            [cookie] = [c for c in context.cookies() if c["name"] == "kb_console"]

            page.click("header .who button:has-text('Sign out')")
            expect(page.locator("p.flash.ok")).to_contain_text("Signed out.")

            replay = browser.new_context()                                 # the old cookie, replayed
            replay.add_cookies([cookie])
            again = replay.new_page()
            again.goto(f"{console.url}/console/queue")
            expect(again).to_have_url(f"{console.url}/console/sign-in?next=/console/queue?")
        finally:
            browser.close()
    assert provider.token_requests and provider.token_requests[-1]["code_verifier"]
