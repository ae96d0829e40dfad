"""middleware.stores.google_push_verify: Pub/Sub push OIDC tokens, checked against keys the tests
generate and serve from a local certs endpoint (tests.support.google_push_tokens)."""
import json
import threading

import pytest
import requests
from google.auth import crypt, exceptions, jwt
from google.oauth2 import id_token

from config.settings import load_settings
from middleware.stores.google_push_verify import (
    UNAUTHENTICATED,
    UNAVAILABLE,
    CachingRequest,
    PushVerificationError,
    PushVerifier,
    accepts_push,
    cache_seconds,
    games_for_push,
    push_audiences,
    push_service_accounts,
)
from tests.support.google_push_tokens import (
    AUDIENCE,
    KID,
    PUSH_ACCOUNT,
    CertsServer,
    FakeClock,
    certificate_pem,
    make_push_token,
)
from tests.test_catalog import load_text
from tests.test_catalog_google_play import keys, table  # noqa: F401  (fixture)

AUDIENCES, ACCOUNTS = {AUDIENCE, "https://other.example/push"}, {PUSH_ACCOUNT}


@pytest.fixture(scope="module")
def certs_server():
    with CertsServer() as server:
        yield server


@pytest.fixture
def certs(certs_server):
    return certs_server.reset()


@pytest.fixture
def clock():
    return FakeClock()


def verifier_for(server: CertsServer, clock: FakeClock, **kwargs) -> PushVerifier:
    session = requests.Session()
    session.trust_env = False  # never a proxy for loopback
    return PushVerifier(server.url, clock=clock, session=session, **kwargs)


@pytest.fixture
def verifier(certs, clock):
    return verifier_for(certs, clock)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(verifier, header, reason, audiences=AUDIENCES, accounts=ACCOUNTS) -> PushVerificationError:
    with pytest.raises(PushVerificationError) as info:
        verifier.verify(header, audiences, accounts)
    assert (info.value.kind, info.value.reason) == (UNAUTHENTICATED, reason), info.value.message
    return info.value


# ---------------------------------------------------------------- accepted
def test_a_push_token_is_accepted_and_its_claims_returned(verifier, certs, clock):
    claims = verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert claims["aud"] == AUDIENCE and claims["email"] == PUSH_ACCOUNT and claims["email_verified"] is True
    assert certs.hits == 1


def test_both_google_issuers_and_a_lower_case_scheme(verifier, clock):
    token = make_push_token(now=clock(), iss="accounts.google.com")
    assert verifier.verify(f"bearer  {token}", AUDIENCES, ACCOUNTS)["iss"] == "accounts.google.com"


def test_leeway_on_exp_and_iat(verifier, clock):
    verifier.verify(bearer(make_push_token(now=clock() - 3600 - 20)), AUDIENCES, ACCOUNTS)  # expired 20 s ago
    verifier.verify(bearer(make_push_token(now=clock() + 20)), AUDIENCES, ACCOUNTS)  # issued 20 s ahead
    refused(verifier, bearer(make_push_token(now=clock() - 3600 - 31)), "expired")
    refused(verifier, bearer(make_push_token(now=clock() + 31)), "not_yet_valid")


def test_a_token_without_kid_is_checked_against_every_key(certs, clock):
    certs.keys = ("other-key", KID)
    verifier = verifier_for(certs, clock)
    verifier.verify(bearer(make_push_token(now=clock(), kid=None)), AUDIENCES, ACCOUNTS)


# ---------------------------------------------------------------- refused
@pytest.mark.parametrize("claims, reason", [
    ({"aud": "https://evil.example/push"}, "audience"),
    ({"aud": [AUDIENCE]}, "audience"),
    ({"aud": None}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"iss": None}, "issuer"),
    ({"email": "someone@evil.example"}, "email"),
    ({"email": None}, "email"),
    ({"email_verified": False}, "email_unverified"),
    ({"email_verified": "true"}, "email_unverified"),
    ({"email_verified": None}, "email_unverified"),
    ({"exp": 1_000_000}, "expired"),
    ({"iat": None}, "garbled"),
    ({"exp": "soon"}, "garbled"),
])
def test_wrong_claims_are_refused(verifier, clock, claims, reason):
    refused(verifier, bearer(make_push_token(now=clock(), **claims)), reason)


def test_an_expired_token_is_refused(verifier, clock):
    token = make_push_token(now=clock())
    verifier.verify(bearer(token), AUDIENCES, ACCOUNTS)
    clock.advance(3600 + 31)
    error = refused(verifier, bearer(token), "expired")
    assert error.message == "the token has expired"


def test_the_audience_and_account_sets_are_what_the_caller_passes(verifier, clock):
    token = bearer(make_push_token(now=clock()))
    refused(verifier, token, "audience", audiences={"https://other.example/push"})
    refused(verifier, token, "email", accounts=set())


@pytest.mark.parametrize("header, reason", [
    (None, "missing"),
    ("", "missing"),
    ("Basic dXNlcjpwYXNz", "garbled"),
    ("Bearer", "garbled"),
    ("Bearer abc.def", "garbled"),
    ("Bearer a.b.c.d", "garbled"),
    ("Bearer a+b.c/d.e=", "garbled"),
    ("Bearer e30.bm90IGpzb24.c2ln", "garbled"),  # {} . "not json" . sig
    ("Bearer W10.e30.c2ln", "garbled"),  # [] as the header
    ("Bearer " + "a" * 9000 + ".b.c", "garbled"),
])
def test_missing_or_garbled_headers(verifier, header, reason, certs):
    refused(verifier, header, reason)
    assert certs.hits == 0  # refused before the keys are needed


def test_unknown_kid(verifier, clock):
    refused(verifier, bearer(make_push_token(now=clock(), key="rogue", kid="rogue")), "unknown_kid")
    refused(verifier, bearer(make_push_token(now=clock(), kid=None, key="rogue")), "signature")


def test_bad_signature(verifier, clock):
    refused(verifier, bearer(make_push_token(now=clock(), key="rogue", kid=KID)), "signature")
    head, body, _ = make_push_token(now=clock()).split(".")
    _, _, other_signature = make_push_token(now=clock(), aud="https://other.example/push").split(".")
    refused(verifier, f"Bearer {head}.{body}.{other_signature}", "signature")


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS256"}, {"alg": "ES256"}])
def test_other_algorithms_are_refused(verifier, clock, header):
    refused(verifier, bearer(make_push_token(now=clock(), header=header)), "algorithm")


# ---------------------------------------------------------------- the keys: fetched as their cache headers allow
def test_keys_are_fetched_once_within_max_age_and_parsed_once(verifier, certs, clock, monkeypatch):
    parsed = []
    original = crypt.RSAVerifier.from_string.__func__
    monkeypatch.setattr(crypt.RSAVerifier, "from_string",
                        classmethod(lambda cls, pem: parsed.append(1) or original(cls, pem)))
    for _ in range(50):
        verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
        clock.advance(60)  # 50 minutes in all: inside max-age=3600
    assert certs.hits == 1 and len(parsed) == 1
    clock.advance(3600)
    verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert certs.hits == 2 and len(parsed) == 2


def test_without_cache_headers_keys_are_kept_five_minutes(certs, clock):
    certs.max_age = None
    verifier = verifier_for(certs, clock)
    verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    clock.advance(299)
    verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert certs.hits == 1
    clock.advance(2)
    verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert certs.hits == 2


def test_max_age_zero_is_honoured(certs, clock):
    certs.max_age = 0
    verifier = verifier_for(certs, clock)
    for _ in range(3):
        verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert certs.hits == 3


@pytest.mark.parametrize("headers, seconds", [
    ({"Cache-Control": "public, max-age=19303, must-revalidate, no-transform"}, 19303),
    ({"cache-control": "max-age=600", "Age": "100"}, 500),
    ({"Cache-Control": "max-age=100", "age": "500"}, 0),
    ({"Cache-Control": "no-cache, max-age=600"}, 0),
    ({"Cache-Control": "no-store"}, 0),
    ({"Cache-Control": "max-age=ten"}, 300),
    ({"Cache-Control": "max-age=999999999"}, 86400),
    ({}, 300),
])
def test_cache_seconds(headers, seconds):
    assert cache_seconds(headers) == seconds


def test_an_unknown_kid_refetches_the_keys_at_most_once_a_minute(certs, clock):
    verifier = verifier_for(certs, clock)
    verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    certs.keys = (KID, "rotated")  # Google publishes a new key
    rotated = make_push_token(key="rotated", kid="rotated", now=clock())
    refused(verifier, bearer(rotated), "unknown_kid")  # the keys were fetched less than a minute ago
    assert certs.hits == 1
    clock.advance(61)
    assert verifier.verify(bearer(make_push_token(key="rotated", kid="rotated", now=clock())), AUDIENCES, ACCOUNTS)
    assert certs.hits == 2
    refused(verifier, bearer(make_push_token(key="rogue", kid="rogue", now=clock())), "unknown_kid")
    assert certs.hits == 2  # no refetch for another minute


def test_concurrent_first_verifications_fetch_once(verifier, certs, clock):
    token, verified = bearer(make_push_token(now=clock())), []

    def run():
        for _ in range(20):
            verified.append(verifier.verify(token, AUDIENCES, ACCOUNTS)["aud"])

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verified == [AUDIENCE] * 160 and certs.hits == 1


# ---------------------------------------------------------------- the keys cannot be had
def test_certs_endpoint_down_is_unavailable(clock):
    server = CertsServer()
    verifier = verifier_for(server, clock)  # never started: connection refused
    server.stop()
    with pytest.raises(PushVerificationError) as info:
        verifier.verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert (info.value.kind, info.value.reason) == (UNAVAILABLE, "certs")


def test_certs_errors_are_unavailable_and_not_cached(certs, clock):
    certs.status = 503
    verifier = verifier_for(certs, clock)
    token = bearer(make_push_token(now=clock()))
    for _ in range(2):
        with pytest.raises(PushVerificationError) as info:
            verifier.verify(token, AUDIENCES, ACCOUNTS)
        assert info.value.kind == UNAVAILABLE and "answered 503" in info.value.message
    assert certs.hits == 2
    certs.status = 200
    verifier.verify(token, AUDIENCES, ACCOUNTS)
    assert certs.hits == 3


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"keys": []}', b'{"k": "not a certificate"}'])
def test_a_certs_document_without_usable_keys_is_unavailable(certs, clock, body):
    certs.body = body
    with pytest.raises(PushVerificationError) as info:
        verifier_for(certs, clock).verify(bearer(make_push_token(now=clock())), AUDIENCES, ACCOUNTS)
    assert info.value.kind == UNAVAILABLE


def test_garbled_headers_do_not_need_the_certs(clock):
    server = CertsServer()
    server.stop()
    refused(verifier_for(server, clock), "Bearer x", "garbled")


# ---------------------------------------------------------------- the same answers as google-auth
def test_caching_request_serves_id_token_verify_token(certs, clock):
    request = verifier_for(certs, clock).request
    for _ in range(5):
        claims = id_token.verify_token(make_push_token(), request, audience=AUDIENCE, certs_url=certs.url)
        assert claims["email"] == PUSH_ACCOUNT
    assert certs.hits == 1 and request.fetches == 1


def test_other_calls_go_through_uncached(certs, clock):
    request = CachingRequest({"http://unused.invalid/"}, clock=clock,
                             session=verifier_for(certs, clock).request._inner.session)
    for _ in range(2):
        assert request(certs.url, method="GET").status == 200
    assert certs.hits == 2 and request.fetches == 0


@pytest.mark.parametrize("claims", [
    {}, {"aud": "https://evil.example"}, {"exp": 1_000_000}, {"iat": 4_000_000_000, "exp": 4_000_003_600},
])
@pytest.mark.parametrize("key, kid", [(KID, KID), ("rogue", KID), (KID, None)])
def test_accepts_and_refuses_what_google_auth_jwt_decode_does(certs, key, kid, claims):
    """On the checks both make (signature, key id, iat/exp, audience), with no leeway."""
    verifier = PushVerifier(certs.url, leeway_seconds=0, session=verifier_for(certs, FakeClock()).request._inner.session)
    token = make_push_token(key=key, kid=kid, **claims)
    try:
        jwt.decode(token, certs={KID: certificate_pem(KID)}, audience=sorted(AUDIENCES))
        library = True
    except (ValueError, exceptions.GoogleAuthError):
        library = False
    try:
        verifier.verify(bearer(token), AUDIENCES, ACCOUNTS)
        ours = True
    except PushVerificationError:
        ours = False
    assert ours == library


# ---------------------------------------------------------------- which game a push is for
def test_games_for_push(keys):  # noqa: F811  (the fixture)
    second = table(package_name='"com.second.game"', push_audience='"https://bridge.example.com/second"').replace(
        "games.demo", "games.second")
    shared = table(package_name='"com.third.game"').replace("games.demo", "games.third")
    catalog = load_text(keys, table() + second + shared)
    assert push_audiences(catalog) == {AUDIENCE, "https://bridge.example.com/second"}
    assert push_service_accounts(catalog) == {PUSH_ACCOUNT}
    claims = {"aud": AUDIENCE, "email": PUSH_ACCOUNT}
    assert [g.namespace for g in games_for_push(catalog, claims)] == ["demo", "third"]  # one subscription, two apps
    assert accepts_push(catalog.game("demo").google_play, claims)
    assert not accepts_push(catalog.game("second").google_play, claims)
    assert not accepts_push(None, claims)
    assert games_for_push(catalog, {"aud": "https://bridge.example.com/second", "email": "x@y.z"}) == []


def test_from_settings(certs):
    settings = load_settings({"KB_GOOGLE_CERTS_URL": certs.url})
    verifier = PushVerifier.from_settings(settings, session=verifier_for(certs, FakeClock()).request._inner.session)
    assert verifier.certs_url == certs.url
    assert verifier.verify(bearer(make_push_token()), AUDIENCES, ACCOUNTS)["aud"] == AUDIENCE


def test_json_of_the_certs_endpoint_is_google_shaped(certs):
    body = requests.get(certs.url, timeout=5, proxies={"http": None}).json()
    assert list(body) == [KID] and body[KID].startswith("-----BEGIN CERTIFICATE-----")
    assert json.loads(json.dumps(body)) == body
