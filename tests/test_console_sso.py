"""Signing in to the console with OpenID Connect, against a provider the tests run
(tests/support/oidc_provider.py): a full sign-in (discovery, PKCE, a signed ID token checked against the JWKS),
each bad answer refused with nothing recorded (wrong audience, expired, bad signature, wrong nonce, wrong state,
failed PKCE), a person with no mapped group refused, groups mapped to roles and games, the person named in the
audit rows, sign-out that ends the session on the server (an old cookie replayed finds nothing) and the idle
timeout."""
from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from app import create_app
from config.settings import SettingsError, load_settings
from middleware.ledger.models import ConsoleSession, utcnow
from workers import runtime

from tests.support.oidc_provider import served
from tests.support.ops_ledger import audit_entries, failed_order, state
from tests.test_console import SECRET, act, csrf_of, text

CLIENT_ID, CLIENT_SECRET = "kb-console", "client-secret-for-tests"
ROLES = {"kb-admins": "admin", "kb-support": "operator", "kb-demo-viewers": {"role": "viewer", "namespaces": ["demo"]}}


@pytest.fixture(scope="module")
def provider():
    with served(CLIENT_ID, CLIENT_SECRET) as op:
        yield op


def sso_settings(provider) -> dict:
    return {"secret_key": SECRET, "oidc_issuer": provider.issuer, "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET, "oidc_roles": json.dumps(ROLES)}


@pytest.fixture
def app(settings_overrides, clean, provider):
    provider.tamper, provider.auth_methods = {}, ["client_secret_basic", "client_secret_post"]
    provider.person = {"sub": "248289761001", "email": "alice@example.com", "email_verified": True,
                       "groups": ["kb-support"]}
    app = create_app({**settings_overrides, **sso_settings(provider)})
    app.config["TESTING"] = True
    runtime.use(app)
    yield app
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def to_provider(client, next_=None):
    """Press "Sign in with single sign-on": the app's redirect to the provider, and the provider's answer (a
    redirect back to the app's callback, as a browser would follow it)."""
    response = client.get("/console/sign-in/sso", query_string={"next": next_} if next_ else None)
    assert response.status_code == 302, text(response)
    authorize = response.headers["Location"]
    answer = requests.get(authorize, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return authorize, answer.headers["Location"]


def sso_sign_in(client, next_=None):
    _authorize, back = to_provider(client, next_)
    parts = urlsplit(back)
    return client.get(f"{parts.path}?{parts.query}")


def sessions(services) -> list[ConsoleSession]:
    with services.session() as db:
        rows = list(db.scalars(select(ConsoleSession)))
        db.expunge_all()
        return rows


def test_a_full_sign_in(client, services, provider):
    assert "Sign in with single sign-on" in text(client.get("/console/sign-in"))
    authorize, back = to_provider(client, "/console/queue")
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["response_type"] == ["code"] and asked["client_id"] == [CLIENT_ID]
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    assert asked["state"][0] and asked["nonce"][0] and asked["scope"] == ["openid email profile"]
    assert urlsplit(back).path == "/console/sign-in/callback"
    parts = urlsplit(back)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 303 and response.headers["Location"] == "/console/queue"
    assert provider.token_requests[-1]["code_verifier"]          # the verifier went to the token endpoint
    page = client.get("/console/")
    assert page.status_code == 200 and "alice@example.com · operator" in text(page)
    [row] = sessions(services)
    assert (row.kind, row.actor, row.role, row.namespaces, row.subject) == (
        "sso", "sso:alice@example.com", "operator", None, "248289761001")
    assert sso_sign_in(client).status_code == 303          # signing in again replaces the session
    [again] = sessions(services)
    assert again.id != row.id


@pytest.mark.parametrize("tamper, what", [
    ({"aud": "someone-else"}, "wrong audience"),
    ({"exp": -3600}, "expired an hour ago"),
    ({"other_key": True}, "signed by a key not in the JWKS"),
    ({"nonce": "not-the-nonce"}, "a nonce from another sign-in"),
    ({"iss": "https://evil.example"}, "another issuer"),
])
def test_a_bad_id_token_is_refused_and_nothing_recorded(client, services, provider, tamper, what):
    provider.tamper = tamper
    exchanged = len(provider.token_requests)
    response = sso_sign_in(client)
    assert response.status_code == 401, what
    assert len(provider.token_requests) == exchanged + 1      # the code was exchanged: the ID token was refused
    assert "Single sign-on failed" in text(response) and "Nothing was changed" in text(response)
    assert sessions(services) == [] and client.get("/console/").status_code == 303


def test_a_wrong_or_replayed_state_is_refused(client, services):
    _authorize, back = to_provider(client)
    parts = urlsplit(back)
    query = parse_qs(parts.query)
    forged = client.get(parts.path, query_string={"code": query["code"][0], "state": "forged"})
    assert forged.status_code == 401 and "MismatchingStateError" in text(forged)
    assert sessions(services) == []
    assert client.get(f"{parts.path}?{parts.query}").status_code == 303     # the real one still works once
    other = client.application.test_client()                               # a replay in another browser
    assert other.get(f"{parts.path}?{parts.query}").status_code == 401
    assert len(sessions(services)) == 1


def test_the_provider_checks_the_pkce_verifier(client, services, provider):
    _authorize, back = to_provider(client)
    with client.session_transaction("/console/") as cookie:
        [name] = [k for k in cookie if k.startswith("_state_sso_")]
        kept = cookie[name]
        kept["data"]["code_verifier"] = "x" * 64        # not the verifier of the challenge sent
        cookie[name] = kept
    parts = urlsplit(back)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 401 and sessions(services) == []
    assert provider.token_requests[-1]["code_verifier"] == "x" * 64   # refused by the provider for it


def test_a_provider_that_takes_the_secret_only_in_the_form(client, services, provider):
    provider.auth_methods = ["client_secret_post", "private_key_jwt"]    # as Entra ID's discovery document says
    assert sso_sign_in(client).status_code == 303 and len(sessions(services)) == 1


def test_a_provider_error_is_shown(client, services):
    to_provider(client)
    response = client.get("/console/sign-in/callback", query_string={"error": "access_denied", "state": "x"})
    assert response.status_code == 401 and "access_denied" in text(response) and sessions(services) == []


def test_a_person_with_no_mapped_group_is_refused(client, services, provider):
    provider.person = {**provider.person, "groups": ["marketing"]}
    response = sso_sign_in(client)
    assert response.status_code == 403
    assert "alice@example.com" in text(response) and "KB_OIDC_ROLES" in text(response)
    assert sessions(services) == [] and client.get("/console/").status_code == 303
    provider.person = {key: value for key, value in provider.person.items() if key != "groups"}
    assert sso_sign_in(client).status_code == 403 and sessions(services) == []


def test_groups_map_to_roles_and_games(client, services, provider):
    provider.person = {**provider.person, "groups": ["kb-demo-viewers", "marketing"]}
    assert sso_sign_in(client).status_code == 303
    [row] = sessions(services)
    assert (row.role, row.namespaces) == ("viewer", ["demo"])
    assert "viewer · demo" in text(client.get("/console/"))
    assert client.get("/console/", query_string={"namespace": "other"}).status_code == 422
    other = client.application.test_client()
    provider.person = {**provider.person, "groups": ["kb-demo-viewers", "kb-admins"]}
    assert sso_sign_in(other).status_code == 303
    assert "alice@example.com · admin" in text(other.get("/console/"))


def test_the_person_is_named_in_the_audit_rows(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    assert sso_sign_in(client).status_code == 303
    response = act(client, fulfilment_id, "retry", reason="customer wrote in", idempotency_key="sso-retry-1")
    assert response.status_code == 303, text(response)
    assert state(services, fulfilment_id) == "FULFILLED"
    [entry] = audit_entries(services, fulfilment_id)
    assert (entry.actor, entry.role) == ("sso:alice@example.com", "operator")


def test_without_a_verified_email_the_subject_names_the_person(client, services, provider):
    provider.person = {**provider.person, "email_verified": False}
    assert sso_sign_in(client).status_code == 303
    assert sessions(services)[0].actor == "sso:248289761001"


def test_sign_out_ends_the_session_on_the_server(client, services):
    assert sso_sign_in(client).status_code == 303
    old = client.get_cookie("kb_console", path="/console").value
    response = client.post("/console/sign-out", data={"csrf_token": csrf_of(client.get("/console/"))})
    assert response.status_code == 303 and sessions(services) == []
    replay = client.application.test_client()
    replay.set_cookie("kb_console", old, path="/console")
    response = replay.get("/console/")
    assert response.status_code == 303 and "/console/sign-in" in response.headers["Location"]


def test_an_idle_session_ends(client, services):
    assert sso_sign_in(client).status_code == 303
    assert client.get("/console/").status_code == 200
    with services.session() as db:
        db.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=59)))
        db.commit()
    assert client.get("/console/").status_code == 200       # used within the hour: still on, and the clock restarts
    with services.session() as db:
        assert utcnow() - db.scalars(select(ConsoleSession.last_seen_at)).one() < timedelta(minutes=1)
        db.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=61)))
        db.commit()
    assert client.get("/console/").status_code == 303
    assert "without activity" in text(client.get("/console/sign-in")) and sessions(services) == []


def test_csrf_still_guards_the_forms_after_single_sign_on(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services)
    assert sso_sign_in(client).status_code == 303
    response = client.post(f"/console/orders/{fulfilment_id}/actions/retry", data={"reason": "no token"})
    assert response.status_code == 400 and state(services, fulfilment_id) == "FULFILL_FAILED"


def test_single_sign_on_off_answers_404(settings_overrides, clean):
    app = create_app({**settings_overrides, "secret_key": SECRET})
    client = app.test_client()
    assert "single sign-on" not in text(client.get("/console/sign-in"))
    assert client.get("/console/sign-in/sso").status_code == 404
    app.extensions["kraty_bridge"].close()


def test_the_settings(tmp_path):
    base = {"KB_SECRET_KEY": "k" * 32, "KB_OIDC_ISSUER": "https://idp.example/", "KB_OIDC_CLIENT_ID": "c",
            "KB_OIDC_ROLES": '{"g": "viewer"}'}
    with pytest.raises(SettingsError, match="KB_OIDC_ISSUER: .*needs KB_OIDC_CLIENT_SECRET"):
        load_settings(base)
    secret = tmp_path / "oidc_secret"
    secret.write_text("from-a-file\n")
    settings = load_settings({**base, "KB_OIDC_CLIENT_SECRET_FILE": str(secret)})
    assert settings.oidc_client_secret == "from-a-file" and settings.oidc_issuer == "https://idp.example"
    assert "from-a-file" not in repr(settings)
    ok = {**base, "KB_OIDC_CLIENT_SECRET": "s"}
    for name, value, message in (
            ("KB_OIDC_ISSUER", "http://idp.example", "KB_OIDC_ISSUER: expected an https://"),
            ("KB_OIDC_ROLES", "admins=admin", "KB_OIDC_ROLES: expected a JSON object"),
            ("KB_OIDC_ROLES", '{"g": "root"}', "KB_OIDC_ROLES: 'g': expected one of viewer"),
            ("KB_OIDC_ROLES", '{"g": {"role": "viewer", "namespaces": []}}', "KB_OIDC_ROLES: 'g': namespaces"),
            ("KB_OIDC_SCOPES", "email profile", "KB_OIDC_SCOPES: space-separated scopes including openid"),
            ("KB_SECRET_KEY", "", "KB_OIDC_ISSUER: the console needs KB_SECRET_KEY"),
            ("KB_OIDC_REDIRECT_URL", "/console/sign-in/callback", "KB_OIDC_REDIRECT_URL: expected the full"),
            ("KB_CONSOLE_IDLE_MINUTES", "0", "KB_CONSOLE_IDLE_MINUTES: must be greater than 0")):
        with pytest.raises(SettingsError, match=message):
            load_settings({**ok, name: value})
    assert load_settings({**ok, "KB_OIDC_ISSUER": "http://127.0.0.1:9000"}).oidc_issuer == "http://127.0.0.1:9000"
    callback = "https://console.example.com/console/sign-in/callback"
    assert load_settings({**ok, "KB_OIDC_REDIRECT_URL": callback}).oidc_redirect_url == callback
