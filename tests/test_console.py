"""The web console (/console) with Flask's test client: signing in and out, the session cookie, CSRF, roles and
state rules on the action forms (each refusal shown on the page, nothing changed), search, the queue, the player
page, sinks and replay; and the KB_SECRET_KEY setting it needs."""
from __future__ import annotations

import base64
import json
import os
import re
import stat
import zlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from config import embedded
from config.settings import SettingsError, load_settings
from middleware.ledger.api_keys import hash_key
from middleware.ledger.models import ApiKey, AuditEntry, ConsoleSession, Delivery, Fulfilment, utcnow
from workers import runtime

from tests.support.orders_flow import drain, put_order
from tests.support.ops_ledger import (
    GEMS,
    audit_entries,
    failed_order,
    fulfilled_order,
    key,
    key_name,
    order_id,
    state,
)
from tests.support.sink_receiver import SinkServer
from tests.support.stripe_events import balances
from tests.support.sink_receiver import CRM_SECRET

SECRET = "console-tests-secret-0123456789abcdef"


@pytest.fixture
def app(settings_overrides, clean, app_cache):
    """The app with a session key (the console is off without one); built once, new services per test
    (tests/support/app_cache.py)."""
    app = app_cache.app({**settings_overrides, "secret_key": SECRET})
    runtime.use(app)
    yield app
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def csrf_of(page) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client, services, role: str, namespaces=None) -> tuple[str, str]:
    """Sign ``client`` in with a new key of ``role``; returns (the key, its name)."""
    token = key(services, role, namespaces)["Authorization"].split(" ", 1)[1]
    response = client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(client.get("/console/sign-in"))})
    assert response.status_code == 303, response.get_data(as_text=True)
    return token, key_name(services, {"Authorization": f"Bearer {token}"})


def act(client, fulfilment_id, action, **form):
    """Post an action form as the order page renders it (its CSRF token and idempotency key)."""
    page = client.get(f"/console/orders/{fulfilment_id}")
    data = {"csrf_token": csrf_of(page), **form}
    return client.post(f"/console/orders/{fulfilment_id}/actions/{action}", data=data)


def text(response) -> str:
    return response.get_data(as_text=True)


def session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("kb_console=")]
    return cookie


# -- the setting --------------------------------------------------------------------------------------

def test_the_secret_key_setting():
    assert load_settings({}).secret_key is None
    assert load_settings({"KB_SECRET_KEY": "k" * 32}).secret_key == "k" * 32
    with pytest.raises(SettingsError) as info:
        load_settings({"KB_SECRET_KEY": "short"})
    assert str(info.value).startswith("KB_SECRET_KEY: at least 32 characters")
    assert "k" * 32 not in repr(load_settings({"KB_SECRET_KEY": "k" * 32}))


def test_without_a_secret_key_the_console_is_off(settings_overrides, clean):
    app = create_app(settings_overrides)
    client = app.test_client()
    for path in ("/console/", "/console/sign-in"):
        response = client.get(path)
        assert response.status_code == 503 and "KB_SECRET_KEY" in text(response)
    assert client.post("/console/sign-in", data={"key": "kb_x"}).status_code == 503
    assert "Set-Cookie" not in client.get("/console/sign-in").headers
    assert client.get("/healthz").status_code == 200   # the rest of the app is unaffected
    app.extensions["kraty_bridge"].close()


def test_make_run_keeps_one_secret_key_in_the_instance_folder(tmp_path):
    env = embedded.child_environment({}, tmp_path, 8100)
    made = env["KB_SECRET_KEY"]
    assert len(made) >= 32 and (tmp_path / "secret_key").read_text().strip() == made
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert embedded.child_environment({}, tmp_path, 8100)["KB_SECRET_KEY"] == made      # the next run: the same
    assert embedded.child_environment({"KB_SECRET_KEY": "s" * 40}, tmp_path, 8100)["KB_SECRET_KEY"] == "s" * 40
    (tmp_path / "secret_key").write_text("too short\n")
    with pytest.raises(embedded.LaunchError, match="secret_key: not a secret key"):
        embedded.child_environment({}, tmp_path, 8100)


# -- signing in -----------------------------------------------------------------------------------------

def test_pages_need_a_signed_in_key_and_come_back_after(client, services):
    response = client.get("/console/queue?older=60")
    assert response.status_code == 303 and "/console/sign-in?next=" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    token = key(services, "viewer")["Authorization"].split(" ", 1)[1]
    signed = client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page),
                                                   "next": "/console/queue?older=60"})
    assert signed.status_code == 303 and signed.headers["Location"] == "/console/queue?older=60"
    assert client.get("/console/queue?older=60").status_code == 200


def test_the_session_cookie_is_httponly_samesite_and_holds_no_key(client, services):
    page = client.get("/console/sign-in")
    token = key(services, "operator")["Authorization"].split(" ", 1)[1]
    response = client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page)})
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http (loopback); over https it is Secure, below
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    payload = value.lstrip(".").split(".", 1)[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = json.loads(zlib.decompress(raw) if value.startswith(".") else raw)
    with services.session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_sha256 == hash_key(token))).one()
        [kept] = session.scalars(select(ConsoleSession)).all()
    assert set(data) == {"sid", "csrf"} and kept.id == hash_key(data["sid"]) and kept.api_key_id == row.id
    assert token not in json.dumps(data) and row.key_sha256 not in json.dumps(data)

    https = client.application.test_client()   # the same app, asked over https
    page = https.get("/console/sign-in", base_url="https://console.example")
    token = key(services, "viewer")["Authorization"].split(" ", 1)[1]
    response = https.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page)},
                          base_url="https://console.example")
    assert response.status_code == 303 and "Secure" in session_cookie(response)


def test_bad_keys_are_refused(client, services):
    page = client.get("/console/sign-in")
    for given in ("", "kb_not-a-key", "x" * 5000):
        response = client.post("/console/sign-in", data={"key": given, "csrf_token": csrf_of(page)})
        assert response.status_code == 401 and "Unknown or revoked API key" in text(response)
    receipts = key(services, "receipts")["Authorization"].split(" ", 1)[1]
    response = client.post("/console/sign-in", data={"key": receipts, "csrf_token": csrf_of(page)})
    assert response.status_code == 403 and "needs viewer, operator or admin" in text(response)
    assert client.get("/console/").status_code == 303   # still signed out


def test_sign_in_goes_only_to_console_paths(client, services):
    page = client.get("/console/sign-in")
    token = key(services, "viewer")["Authorization"].split(" ", 1)[1]
    response = client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page),
                                                     "next": "https://evil.example/console/"})
    assert response.headers["Location"] == "/console/"


def test_a_revoked_key_ends_the_session_at_the_next_request(client, services):
    _token, name = sign_in(client, services, "operator")
    assert client.get("/console/").status_code == 200
    with services.session() as session:
        session.execute(update(ApiKey).where(ApiKey.name == name).values(revoked_at=utcnow()))
        session.commit()
    response = client.get("/console/queue")
    assert response.status_code == 303 and "/console/sign-in" in response.headers["Location"]
    assert "was revoked" in text(client.get("/console/sign-in"))
    assert client.get("/console/").status_code == 303   # the session is gone for good


def test_a_session_ends_after_its_lifetime(client, services):
    sign_in(client, services, "viewer")
    with services.session() as session:   # signed in 12 hours ago, busy ever since
        session.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1),
                                                      last_seen_at=utcnow()))
        session.commit()
    assert client.get("/console/").status_code == 303
    assert "session has expired" in text(client.get("/console/sign-in"))
    with services.session() as session:
        assert session.scalars(select(ConsoleSession)).all() == []   # ended on the server


def test_a_session_ends_after_idle_minutes(client, services):
    sign_in(client, services, "viewer")
    assert client.get("/console/").status_code == 200
    with services.session() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=61)))
        session.commit()
    assert client.get("/console/").status_code == 303
    assert "without activity" in text(client.get("/console/sign-in"))


def test_an_old_cookie_replayed_after_sign_out_is_refused(client, services):
    sign_in(client, services, "operator")
    old = client.get_cookie("kb_console", path="/console").value
    client.post("/console/sign-out", data={"csrf_token": csrf_of(client.get("/console/"))})
    other = client.application.test_client()
    other.set_cookie("kb_console", old, path="/console")
    response = other.get("/console/")
    assert response.status_code == 303 and "/console/sign-in" in response.headers["Location"]


def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, services):
    sign_in(client, services, "viewer")
    assert client.post("/console/sign-out").status_code == 400
    assert client.get("/console/").status_code == 200
    response = client.post("/console/sign-out", data={"csrf_token": csrf_of(client.get("/console/"))})
    assert response.status_code == 303
    assert client.get("/console/").status_code == 303
    assert "Signed out." in text(client.get("/console/sign-in"))


# -- CSRF, roles, state rules, reasons ------------------------------------------------------------------

def test_forged_or_missing_csrf_tokens_change_nothing(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    sign_in(client, services, "operator")
    path = f"/console/orders/{fulfilment_id}/actions/retry"
    other = client.application.test_client()   # another browser's session and token
    sign_in(other, services, "operator")
    for data in ({"reason": "no token"}, {"reason": "forged", "csrf_token": "forged-token"},
                 {"reason": "empty", "csrf_token": ""},
                 {"reason": "another session's", "csrf_token": csrf_of(other.get("/console/"))}):
        response = client.post(path, data=data)
        assert response.status_code == 400, data
        assert "security token is missing or wrong" in text(response) and "Nothing was changed" in text(response)
    assert state(services, fulfilment_id) == "FULFILL_FAILED" and audit_entries(services, fulfilment_id) == []
    # signing in needs it too (no signing a victim into the attacker's key)
    token = key(services, "admin")["Authorization"].split(" ", 1)[1]
    assert client.application.test_client().post("/console/sign-in", data={"key": token}).status_code == 400


def test_retry_from_the_console_is_audited_as_console_key(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    _token, name = sign_in(client, services, "operator")
    page = text(client.get(f"/console/orders/{fulfilment_id}"))
    assert "FULFILL_FAILED" in page and 'actions/retry"' in page and 'actions/revoke"' in page
    assert 'actions/resolve"' not in page and 'actions/make-good"' not in page   # admin only: not offered
    response = act(client, fulfilment_id, "retry", reason="ticket 42: gems never arrived",
                   idempotency_key="console-test-1-retry")
    assert response.status_code == 303 and response.headers["Location"] == f"/console/orders/{fulfilment_id}"
    shown = text(client.get(response.headers["Location"]))
    assert "Retry done: the order is FULFILLED now" in shown and "ticket 42: gems never arrived" in shown
    [entry] = audit_entries(services, fulfilment_id)
    assert (entry.actor, entry.role, entry.action, entry.reason) == \
        (f"console:{name}", "operator", "retry", "ticket 42: gems never arrived")
    assert entry.request_id and entry.before["state"] == "FULFILL_FAILED" and entry.after["state"] == "FULFILLED"
    # the same form sent again (a double click, a refresh): the first answer, nothing more
    again = act(client, fulfilment_id, "retry", reason="ticket 42: gems never arrived",
                idempotency_key="console-test-1-retry")
    assert again.status_code == 303 and "already sent" in text(client.get(again.headers["Location"]))
    assert len(audit_entries(services, fulfilment_id)) == 1


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 501])
def test_missing_or_bad_reasons_are_refused(client, services, emulator, reason):
    fulfilment_id = failed_order(client, emulator, services)
    sign_in(client, services, "operator")
    form = {} if reason is None else {"reason": reason}
    response = act(client, fulfilment_id, "retry", **form)
    assert response.status_code == 422
    page = text(response)
    assert "Retry refused (422 validation_failed)" in page and "reason" in page
    assert state(services, fulfilment_id) == "FULFILL_FAILED" and audit_entries(services, fulfilment_id) == []


def test_an_operator_cannot_do_an_admin_action(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    sign_in(client, services, "operator")
    for action, extra in (("resolve", {}), ("make-good", {"contents": "currency gems 100"})):
        response = act(client, fulfilment_id, action, reason="ticket 42", **extra)
        assert response.status_code == 403, action
        assert "needs the admin role" in text(response)
    assert state(services, fulfilment_id) == "FULFILL_FAILED" and audit_entries(services, fulfilment_id) == []
    assert balances(emulator) == ({"gems": 100}, {}) and not emulator.player("player-1").get("grants")


def test_a_viewer_sees_no_actions_and_may_not_act(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    sign_in(client, services, "viewer")
    page = text(client.get(f"/console/orders/{fulfilment_id}"))
    assert "/actions/" not in page and "No action fits this order" in page
    response = act(client, fulfilment_id, "retry", reason="let me")
    assert response.status_code == 403 and "needs the operator role" in text(response)
    assert state(services, fulfilment_id) == "FULFILL_FAILED"


def test_an_action_in_the_wrong_state_shows_the_409_message(client, services):
    fulfilment_id = fulfilled_order(client, services)
    sign_in(client, services, "admin")
    page = text(client.get(f"/console/orders/{fulfilment_id}"))
    assert 'actions/revoke"' in page and 'actions/retry"' not in page and 'actions/resolve"' not in page
    for action in ("retry", "resolve", "attach-player"):
        response = act(client, fulfilment_id, action, reason="stale page", player_id="player-9")
        assert response.status_code == 409, action
        shown = text(response)
        assert "refused (409 invalid_state)" in shown and f"order {fulfilment_id} is FULFILLED" in shown
    assert state(services, fulfilment_id) == "FULFILLED" and audit_entries(services, fulfilment_id) == []
    assert act(client, fulfilment_id, "nonsense", reason="r").status_code == 404
    assert client.get("/console/orders/no-such-order").status_code == 404


def test_admin_make_good_and_resolve(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    _token, name = sign_in(client, services, "admin")
    page = text(client.get(f"/console/orders/{fulfilment_id}"))
    assert all(f'actions/{a}"' in page for a in ("retry", "revoke", "make-good", "resolve"))
    bad = act(client, fulfilment_id, "make-good", reason="sorry", contents="gems lots")
    assert bad.status_code == 422 and "currency gems 100" in text(bad)
    made = act(client, fulfilment_id, "make-good", reason="sorry for the wait", contents="currency gems 50\n")
    assert made.status_code == 303
    [grant] = emulator.player("player-1").get("grants", [])
    assert "sorry for the wait" in grant["reason"]
    resolved = act(client, fulfilment_id, "resolve", reason="sword given by hand")
    assert resolved.status_code == 303 and state(services, fulfilment_id) == "RESOLVED"
    assert [(e.action, e.actor) for e in audit_entries(services, fulfilment_id)] == \
        [("make-good", f"console:{name}"), ("resolve", f"console:{name}")]


def test_a_key_limited_to_other_games_does_not_see_the_order(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    sign_in(client, services, "admin", namespaces=["other-game"])
    assert client.get(f"/console/orders/{fulfilment_id}").status_code == 404
    token = csrf_of(client.get("/console/"))
    response = client.post(f"/console/orders/{fulfilment_id}/actions/retry", data={"csrf_token": token,
                                                                                    "reason": "r"})
    assert response.status_code == 404 and state(services, fulfilment_id) == "FULFILL_FAILED"
    assert fulfilment_id not in text(client.get("/console/?q=player-1"))


# -- pages --------------------------------------------------------------------------------------------

def test_search_by_player_transaction_and_order_id_escapes_everything(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services, txn="t-search")
    odd = put_order(client, [GEMS], txn="t-odd", user='<i>"bold"&<i>')
    assert odd.status_code == 200, odd.get_json()
    sign_in(client, services, "viewer")
    by_player = text(client.get("/console/?q=player-1"))
    assert fulfilment_id in by_player and "/console/players/demo/player-1" in by_player
    assert fulfilment_id in text(client.get("/console/?q=t-search"))
    assert fulfilment_id in text(client.get(f"/console/?q={fulfilment_id}"))
    shown = text(client.get("/console/", query_string={"q": '<i>"bold"&<i>'}))
    assert order_id(services, "t-odd") in shown   # found by that player id, shown escaped
    assert "&lt;i&gt;&#34;bold&#34;&amp;&lt;i&gt;" in shown and "<i>" not in shown
    assert client.get("/console/", query_string={"q": "x" * 256}).status_code == 422
    assert client.get("/console/?q=player-1&namespace=nope").status_code == 422


def test_the_queue_lists_failed_and_stuck_orders(client, services, emulator):
    failed = failed_order(client, emulator, services, txn="t-q-failed")
    stuck = fulfilled_order(client, services, txn="t-q-stuck")
    fresh = fulfilled_order(client, services, txn="t-q-fresh")
    with services.session() as session:   # one order FULFILLING for an hour, one just now
        session.execute(update(Fulfilment).where(Fulfilment.id == stuck).values(
            state="FULFILLING", state_changed_at=utcnow() - timedelta(hours=1)))
        session.execute(update(Fulfilment).where(Fulfilment.id == fresh).values(state="FULFILLING"))
        session.commit()
    sign_in(client, services, "viewer")
    page = text(client.get("/console/queue"))
    failed_part, _, rest = page.partition('id="revoke-failed"')
    stuck_part = rest.partition('id="stuck"')[2]
    assert failed in failed_part and stuck in stuck_part and fresh not in page
    assert stuck not in text(client.get("/console/queue?older=1440"))
    bad = client.get("/console/queue?older=7")
    assert bad.status_code == 422 and "older" in text(bad)


def test_the_player_page_says_when_kraty_is_unreachable(client, services, emulator):
    fulfilled_order(client, services)
    sign_in(client, services, "viewer")
    page = text(client.get("/console/players/demo/player-1"))
    assert "Kraty unreachable" not in page and "Orders" in page
    emulator.faults({"path": "/players/player-1$", "method": "GET", "status": 503})
    response = client.get("/console/players/demo/player-1")
    assert response.status_code == 200 and "Kraty unreachable" in text(response) and "503" in text(response)
    assert client.get("/console/players/nope/player-1").status_code == 422


def test_console_pages_send_security_headers(client, services):
    sign_in(client, services, "viewer")
    response = client.get("/console/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    with client.get("/console/static/console.js") as static:   # a file response: closed, or a ResourceWarning
        assert static.status_code == 200


# -- sinks --------------------------------------------------------------------------------------------

@pytest.fixture
def crm():
    served = SinkServer({"/crm": CRM_SECRET})
    yield served
    served.stop()


@pytest.fixture
def sinks_app(settings_overrides, clean, crm, tmp_path):
    sinks = tmp_path / "sinks.toml"
    sinks.write_text(f'[sinks.crm]\nurl = "{crm.url}/crm"\nsecret = "{CRM_SECRET}"\nschedule = [0]\ntimeout = 2\n')
    app = create_app({**settings_overrides, "secret_key": SECRET, "sinks_path": str(sinks)})
    runtime.use(app)
    yield app
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def test_sinks_dead_letters_and_replay(sinks_app, crm):
    client, services = sinks_app.test_client(), sinks_app.extensions["kraty_bridge"]
    crm.always(500)
    put_order(client, [GEMS], txn="t-dead")
    drain(services.redis)
    with services.session() as session:
        [dead] = session.scalars(select(Delivery.id).where(Delivery.state == "dead")).all()
    sign_in(client, services, "viewer")
    page = client.get("/console/sinks")
    assert dead in text(page) and "Replay" not in text(page)   # a viewer sees, does not replay
    token = csrf_of(page)
    refused = client.post(f"/console/sinks/crm/deliveries/{dead}/replay", data={"csrf_token": token, "reason": "r"})
    assert refused.status_code == 403

    client = sinks_app.test_client()
    _token, name = sign_in(client, services, "operator")
    token = csrf_of(client.get("/console/sinks"))
    assert client.post(f"/console/sinks/crm/deliveries/{dead}/replay", data={"reason": "r"}).status_code == 400
    assert client.post(f"/console/sinks/crm/deliveries/{dead}/replay",
                       data={"csrf_token": token, "reason": " "}).status_code == 422
    assert client.post("/console/sinks/crm/deliveries/nope/replay",
                       data={"csrf_token": token, "reason": "r"}).status_code == 404
    assert client.post("/console/sinks/other/replay", data={"csrf_token": token, "reason": "r",
                                                            "since": "2020-01-01T00:00"}).status_code == 404
    assert client.post("/console/sinks/crm/replay", data={"csrf_token": token, "reason": "r",
                                                          "since": "yesterday"}).status_code == 422
    with services.session() as session:
        assert session.get(Delivery, dead).state == "dead" and session.scalars(select(AuditEntry)).all() == []
    crm.always(200)
    done = client.post(f"/console/sinks/crm/deliveries/{dead}/replay", data={"csrf_token": token, "reason": "CRM fixed"})
    assert done.status_code == 303
    drain(services.redis)
    with services.session() as session:
        assert session.get(Delivery, dead).state == "delivered"
        [entry] = session.scalars(select(AuditEntry)).all()
    assert (entry.action, entry.target_id, entry.actor, entry.reason) == \
        ("sink.replay", dead, f"console:{name}", "CRM fixed")
    again = client.post(f"/console/sinks/crm/deliveries/{dead}/replay",
                        data={"csrf_token": token, "reason": "again"})
    assert again.status_code == 303  # a delivered delivery may be sent again
    since = client.post("/console/sinks/crm/replay", data={"csrf_token": token, "reason": "outage over",
                                                           "since": (utcnow() - timedelta(hours=1)).strftime(
                                                               "%Y-%m-%dT%H:%M")})
    assert since.status_code == 303
    enable = client.post("/console/sinks/crm/enable", data={"csrf_token": token, "reason": "r"})
    assert enable.status_code == 409 and "is not disabled" in text(enable)
