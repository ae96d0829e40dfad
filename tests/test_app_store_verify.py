"""App Store signed data verified with Apple's SignedDataVerifier (middleware.stores.app_store_verify).

Every notification and transaction is signed by the test CA of tests/support/apple_ca.py; Apple's verifier runs
for real, in strict mode, against the roots the catalog names and the fingerprints the tests pin.
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import random
import re
import string
import threading

import pytest
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)

from config.app_store_config import APPLE_ROOT_CA_G3_SHA256
from config.catalog import CatalogError, load_catalog
from middleware.stores import app_store_verify
from middleware.stores import jws as jws_reader
from middleware.stores.app_store_verify import (
    AppStoreVerificationError,
    AppStoreVerifiers,
)
from tests.support import apple_ca as ca
from tests.support.apple_ca import (
    APP_APPLE_ID,
    BUNDLE_ID,
    DAY,
    OcspResponder,
    closed_port_url,
    default_chain,
    make_chain,
    notification,
    now_ms,
    other_chain,
    sign_jws,
    signed_notification,
    tamper_payload,
    tamper_signature,
    transaction,
)

GAME = """
[games.{ns}]
kraty_base_url = "http://127.0.0.1:8100"
server_key = "kraty_sk_{ns}"
allow_sandbox = {sandbox}

[games.{ns}.app_store]
bundle_id = "{bundle}"
{app_id}allow_production = {production}
root_certificates = {roots}
online_checks = {online}

[games.{ns}.products.gems_100]
type = "COINS"
store_ids = {{ app_store = "com.demo.gems100" }}
grants = [{{ currency = "gems", amount = 100 }}]
"""
SANDBOX_ONLY, PRODUCTION_ONLY, ONLINE = "com.demo.sandboxonly", "com.demo.productiononly", "com.demo.online"


def game(ns, bundle, *, sandbox=True, production=True, roots='["root.cer"]', online=False):
    app_id = f"app_apple_id = {APP_APPLE_ID}\n" if production else ""
    return GAME.format(ns=ns, bundle=bundle, sandbox=str(sandbox).lower(), production=str(production).lower(),
                       roots=roots, online=str(online).lower(), app_id=app_id)


@pytest.fixture(scope="module")
def ocsp():
    """A local OCSP responder answering "good" for the online game's chain."""
    with OcspResponder() as responder:
        responder.chain = make_chain(label=" (ocsp)", ocsp_url=responder.url)
        responder.serve(responder.chain)
        yield responder


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, ocsp):
    directory = tmp_path_factory.mktemp("app_store")
    default_chain().write_root(directory, "root.cer")
    other_chain().write_root(directory, "other.cer")
    ocsp.chain.write_root(directory, "ocsp.cer")
    text = (game("demo", BUNDLE_ID, roots='["other.cer", "root.cer"]')  # Production trusts only the pinned root
            + game("sandboxonly", SANDBOX_ONLY, production=False)
            + game("productiononly", PRODUCTION_ONLY, sandbox=False)
            + game("online", ONLINE, production=False, roots='["ocsp.cer"]', online=True))
    (directory / "catalog.toml").write_text(text)
    return load_catalog(directory / "catalog.toml")


@pytest.fixture(scope="module")
def verifiers(catalog):
    return AppStoreVerifiers(catalog, {default_chain().root.sha256})


def refused(call, *args) -> AppStoreVerificationError:
    with pytest.raises(AppStoreVerificationError) as info:
        call(*args)
    return info.value


def unverified(call, *args, status=VerificationStatus.VERIFICATION_FAILURE) -> AppStoreVerificationError:
    error = refused(call, *args)
    assert (error.kind, error.status, error.retryable) == ("unverified", status, False), (error.message, error.detail)
    return error


# ---------------------------------------------------------------- good data
@pytest.mark.parametrize("environment", ["Sandbox", "Production"])
def test_good_notification(verifiers, catalog, environment):
    tx = transaction(environment=environment, transaction_id="2000000000000042", app_account_token=str(ca.uuid.uuid4()))
    payload = notification("ONE_TIME_CHARGE", environment=environment, signed_transaction=sign_jws(tx))
    verified = verifiers.notification(sign_jws(payload))
    assert verified.game is catalog.game("demo") and verified.environment == environment
    assert verified.notification == payload and verified.transaction == tx
    assert verified.notification["notificationType"] == "ONE_TIME_CHARGE"


def test_test_notification_carries_only_bundle_and_environment(verifiers, catalog):
    payload = notification("TEST")
    assert payload["data"] == {"bundleId": BUNDLE_ID, "environment": "Sandbox"}
    verified = verifiers.notification(sign_jws(payload))
    assert verified.notification == payload and verified.transaction is None and verified.game is catalog.game("demo")
    # Production notifications carry the app's Apple id, TEST ones too; the library checks it
    production = notification("TEST", environment="Production", data={
        "bundleId": BUNDLE_ID, "environment": "Production", "appAppleId": APP_APPLE_ID})
    assert verifiers.notification(sign_jws(production)).transaction is None


def test_notification_without_a_transaction(verifiers):
    payload = notification("CONSUMPTION_REQUEST")
    verified = verifiers.notification(sign_jws(payload))
    assert verified.transaction is None and "signedTransactionInfo" not in verified.notification["data"]


def test_good_transaction(verifiers, catalog):
    for environment in ("Sandbox", "Production"):
        tx = transaction(environment=environment)
        verified = verifiers.transaction(sign_jws(tx))
        assert (verified.game, verified.environment, verified.transaction) == (catalog.game("demo"), environment, tx)


def test_games_are_picked_by_bundle_id(verifiers, catalog):
    verified = verifiers.notification(signed_notification(bundle_id=SANDBOX_ONLY))
    assert verified.game is catalog.game("sandboxonly")
    verified = verifiers.transaction(sign_jws(transaction(bundle_id=PRODUCTION_ONLY, environment="Production")))
    assert verified.game is catalog.game("productiononly")


# ---------------------------------------------------------------- the chain
@pytest.fixture(scope="module")
def stranger():
    """A chain whose root no game lists."""
    return make_chain(label=" (stranger)")


def test_wrong_chain(verifiers, stranger):
    unverified(verifiers.notification, signed_notification(chain=stranger))
    unverified(verifiers.notification, signed_notification(chain=stranger, environment="Production"))
    unverified(verifiers.transaction, sign_jws(transaction(), stranger))
    mixed = [default_chain().x5c()[0], other_chain().x5c()[1], default_chain().x5c()[2]]  # leaf not from that CA
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=mixed))
    swapped = [default_chain().x5c()[1], default_chain().x5c()[0], default_chain().x5c()[2]]
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=swapped))


def test_wrong_root(verifiers, stranger):
    # x5c's third certificate is not what is trusted: only the configured roots are
    claims_good_root = [stranger.x5c()[0], stranger.x5c()[1], default_chain().x5c()[2]]
    unverified(verifiers.notification, sign_jws(notification("TEST"), stranger, x5c=claims_good_root))
    other = other_chain()
    # demo lists other.cer too: Sandbox trusts every listed root, Production only the pinned ones
    assert verifiers.notification(signed_notification("TEST", chain=other)).environment == "Sandbox"
    unverified(verifiers.notification, signed_notification(chain=other, environment="Production"))
    unverified(verifiers.transaction, sign_jws(transaction(environment="Production"), other))


def test_missing_or_bad_x5c(verifiers):
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=False))
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=[]))
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=default_chain().x5c()[:2]),
               status=VerificationStatus.INVALID_CHAIN_LENGTH)
    unverified(verifiers.notification, sign_jws(notification("TEST"), x5c=["bm90IGEgY2VydA==", "QQ==", "QQ=="]),
               status=VerificationStatus.INVALID_CERTIFICATE)
    unverified(verifiers.transaction, sign_jws(transaction(), x5c=False))


def test_chain_without_apple_oids(verifiers, tmp_path):
    root = default_chain().root
    for chain in (make_chain(root, leaf_oid=False), make_chain(root, intermediate_oid=False)):
        unverified(verifiers.notification, signed_notification("TEST", chain=chain))


@pytest.mark.parametrize("alg", ["ES384", "HS256", "none", "RS256"])
def test_alg_other_than_es256(verifiers, alg):
    unverified(verifiers.notification, sign_jws(notification("TEST"), alg=alg))
    unverified(verifiers.transaction, sign_jws(transaction(), alg=alg))


def test_certificate_expired_at_signed_date(verifiers):
    now = ca.utc()
    chain = make_chain(default_chain().root, leaf_not_before=now - 10 * DAY, leaf_not_after=now - 5 * DAY)
    unverified(verifiers.notification, signed_notification("TEST", chain=chain))
    unverified(verifiers.transaction, sign_jws(transaction(), chain))
    # offline, the chain is checked as of signedDate: signed while the leaf was valid, it verifies
    then = now_ms() - 7 * 86_400_000
    assert verifiers.transaction(sign_jws(transaction(signed_date=then), chain)).environment == "Sandbox"
    # ...and a chain remembered from that verification is not accepted for a later signedDate
    unverified(verifiers.transaction, sign_jws(transaction(signed_date=now_ms()), chain))
    not_yet = make_chain(default_chain().root, leaf_not_before=now + 5 * DAY, leaf_not_after=now + 50 * DAY)
    unverified(verifiers.transaction, sign_jws(transaction(), not_yet))


def test_remembered_chain_honours_every_certificate_window(verifiers):
    """The chain cache answers only for dates inside all three certificates' validity."""
    hits = verifiers.chain_cache_hits()
    tx = sign_jws(transaction())
    verifiers.transaction(tx)
    verifiers.transaction(tx)
    assert verifiers.chain_cache_hits() >= hits + 1
    too_late = (default_chain().leaf.cert.not_valid_after_utc + dt.timedelta(days=1)).timestamp() * 1000
    unverified(verifiers.transaction, sign_jws(transaction(signed_date=int(too_late))))
    too_early = (default_chain().intermediate.cert.not_valid_before_utc - DAY).timestamp() * 1000
    unverified(verifiers.transaction, sign_jws(transaction(signed_date=int(too_early))))


# ---------------------------------------------------------------- the payload and signature
def test_tampered_payload(verifiers):
    signed = signed_notification("ONE_TIME_CHARGE")
    unverified(verifiers.notification, tamper_payload(signed, notificationType="REFUND_REVERSED"))
    unverified(verifiers.transaction, tamper_payload(sign_jws(transaction()), productId="com.demo.gems500"))
    unverified(verifiers.transaction, tamper_payload(sign_jws(transaction()), quantity=100))


def test_tampered_signature(verifiers):
    unverified(verifiers.notification, tamper_signature(signed_notification()))
    unverified(verifiers.transaction, tamper_signature(sign_jws(transaction())))
    other_key = make_chain().leaf.key  # right chain in x5c, signed by another key
    unverified(verifiers.transaction, sign_jws(transaction(), key=other_key))
    head, body, _ = sign_jws(transaction()).split(".")
    unverified(verifiers.transaction, f"{head}.{body}.{ca.b64url(b'x' * 70)}")


def test_nested_transaction_failing_while_the_outer_verifies(verifiers):
    signed = signed_notification(transaction_chain=other_chain(), environment="Production")  # other: not pinned
    error = unverified(verifiers.notification, signed)
    assert error.message.startswith("data.signedTransactionInfo: ")
    inner = tamper_signature(sign_jws(transaction()))
    error = unverified(verifiers.notification, sign_jws(notification(signed_transaction=inner)))
    assert error.message.startswith("data.signedTransactionInfo: ")


def test_wrong_bundle_id(verifiers):
    tx = transaction(bundle_id=SANDBOX_ONLY)  # another game's transaction inside demo's notification
    error = unverified(verifiers.notification, sign_jws(notification(signed_transaction=sign_jws(tx))),
                       status=VerificationStatus.INVALID_APP_IDENTIFIER)
    assert "data.signedTransactionInfo" in error.message
    wrong_app = notification("TEST", environment="Production", data={
        "bundleId": BUNDLE_ID, "environment": "Production", "appAppleId": APP_APPLE_ID + 1})
    unverified(verifiers.notification, sign_jws(wrong_app), status=VerificationStatus.INVALID_APP_IDENTIFIER)
    no_app = notification("TEST", environment="Production")  # Production data must name the app
    unverified(verifiers.notification, sign_jws(no_app), status=VerificationStatus.INVALID_APP_IDENTIFIER)


def test_wrong_environment(verifiers):
    tx = transaction(environment="Production")
    unverified(verifiers.notification, sign_jws(notification(signed_transaction=sign_jws(tx))),
               status=VerificationStatus.INVALID_ENVIRONMENT)
    tx = transaction(environment="Sandbox")
    unverified(verifiers.notification, sign_jws(notification(environment="Production", signed_transaction=sign_jws(tx))),
               status=VerificationStatus.INVALID_ENVIRONMENT)


@pytest.mark.parametrize("environment", ["Xcode", "LocalTesting", "sandbox", None])
def test_unsigned_or_unknown_environments_are_not_accepted(verifiers, environment):
    """Apple's verifier skips the signature for Xcode and LocalTesting: never build one for them."""
    error = refused(verifiers.transaction, sign_jws(transaction(environment=environment), x5c=False, alg="none"))
    assert error.kind == "not_accepted" and "environment" in error.message
    error = refused(verifiers.notification, sign_jws(notification("TEST", environment=environment)))
    assert error.kind == "not_accepted"


def test_unknown_bundle_id(verifiers):
    error = refused(verifiers.notification, signed_notification("TEST", bundle_id="com.unknown.game"))
    assert error.kind == "not_accepted" and not error.retryable and "'com.unknown.game'" in error.message
    error = refused(verifiers.transaction, sign_jws(transaction(bundle_id="com.unknown.game")))
    assert error.kind == "not_accepted"


def test_environment_the_game_does_not_take(verifiers):
    error = refused(verifiers.notification, signed_notification("TEST", bundle_id=PRODUCTION_ONLY))
    assert error.kind == "not_accepted" and "game productiononly does not take Sandbox" in error.message
    error = refused(verifiers.transaction, sign_jws(transaction(bundle_id=SANDBOX_ONLY, environment="Production")))
    assert error.kind == "not_accepted" and "allow_production is false" in error.message


@pytest.mark.parametrize("token", [None, 5, "", "abc", "a.b", "a.b.c.d", "!!.??.##", "e30.W10.", "bm90IGpzb24.e30.",
                                   f"{ca.b64url(b'{}')}.{ca.b64url(b'[1]')}.AA"])
def test_malformed(verifiers, token):
    for call in (verifiers.notification, verifiers.transaction):
        assert refused(call, token).kind == "malformed"


def test_signed_payload_of_the_wrong_shape_is_malformed(verifiers):
    error = refused(verifiers.transaction, sign_jws(transaction(quantity="seven")))
    assert error.kind == "malformed"


# ---------------------------------------------------------------- online checks (OCSP)
def test_online_checks_ask_the_responder_and_the_library_caches_the_answer(verifiers, ocsp):
    before = ocsp.requests
    assert verifiers.notification(signed_notification(chain=ocsp.chain, bundle_id=ONLINE)).environment == "Sandbox"
    assert ocsp.requests == before + 2  # intermediate and leaf, once: the library caches the verified chain
    verifiers.transaction(sign_jws(transaction(bundle_id=ONLINE), ocsp.chain))
    assert ocsp.requests == before + 2


def test_online_checks_refuse_a_revoked_certificate(tmp_path):
    with OcspResponder("revoked") as responder:
        chain = make_chain(ocsp_url=responder.url)
        responder.serve(chain)
        v = online_verifiers(tmp_path, chain)
        unverified(v.transaction, sign_jws(transaction(bundle_id=ONLINE), chain))


def test_unreachable_ocsp_responder_is_retryable(tmp_path):
    chain = make_chain(ocsp_url=closed_port_url())
    error = refused(online_verifiers(tmp_path, chain).notification, signed_notification(chain=chain, bundle_id=ONLINE))
    assert (error.kind, error.status, error.retryable) == (
        "retryable", VerificationStatus.RETRYABLE_VERIFICATION_FAILURE, True)


def online_verifiers(tmp_path, chain) -> AppStoreVerifiers:
    chain.write_root(tmp_path, "root.cer")
    (tmp_path / "catalog.toml").write_text(game("online", ONLINE, production=False, online=True))
    return AppStoreVerifiers(load_catalog(tmp_path / "catalog.toml"), {default_chain().root.sha256})


# ---------------------------------------------------------------- building
def test_production_without_a_pinned_root_refuses_to_build(catalog):
    with pytest.raises(CatalogError) as info:
        AppStoreVerifiers(catalog, {APPLE_ROOT_CA_G3_SHA256})
    lines = str(info.value).splitlines()
    assert len(lines) == 2  # demo and productiononly take Production; their roots are not pinned
    assert all("app_store.root_certificates: game " in line and "takes Production" in line for line in lines)


def test_library_path_and_single_parse_path_agree(catalog):
    """The verifier's one-parse path decides exactly as the library's own method on the same object."""
    verifier = AppStoreVerifiers(catalog, {default_chain().root.sha256})._verifiers[BUNDLE_ID, "Sandbox"]
    expired = make_chain(default_chain().root, leaf_not_before=ca.utc() - 10 * DAY, leaf_not_after=ca.utc() - DAY)
    good = sign_jws(transaction())
    head, body, signature = good.split(".")
    tokens = [
        good, sign_jws(transaction(), other_chain()), sign_jws(transaction(), x5c=False), sign_jws(transaction(), alg="ES384"),
        sign_jws(transaction(), x5c=default_chain().x5c()[:2]), tamper_signature(good), tamper_payload(good, quantity=3),
        sign_jws(transaction(), expired), sign_jws(transaction(signed_date=now_ms() - 3 * 86_400_000), expired),
        sign_jws(transaction(), header={"kid": "x"}), sign_jws(transaction(exp=1)), f"{head}=.{body}.{signature}",
        f"{head}.{body}.{signature}A", sign_jws(transaction(signedDate=None)), sign_jws(transaction(signedDate="x")),
        sign_jws(transaction(), x5c=[1, 2, 3]), f"{head}.{body}.{ca.b64url(b'x' * 64)}", "a.b.c",
    ]
    for token in tokens:
        outcomes = []
        for method in (type(verifier)._decode_signed_object, SignedDataVerifier._decode_signed_object):
            try:
                outcomes.append(("ok", method(verifier, token)))
            except VerificationException as exc:
                outcomes.append(("refused", exc.status))
        assert outcomes[0] == outcomes[1], token
    payload = ca.json.loads(ca.base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert type(verifier)._decode_signed_object(verifier, good) == payload and payload["transactionId"]


def test_plain_jws_takes_the_single_parse_path(catalog, monkeypatch):
    """Apple's usual shape never reaches PyJWT's triple parse; other shapes do."""
    verifiers = AppStoreVerifiers(catalog, {default_chain().root.sha256})
    calls = []
    library = SignedDataVerifier._decode_signed_object
    monkeypatch.setattr(SignedDataVerifier, "_decode_signed_object",
                        lambda self, token: calls.append(token) or library(self, token))
    verifiers.notification(signed_notification())
    assert calls == []
    odd = sign_jws(transaction(), header={"typ": "JWT"})
    assert verifiers.transaction(odd).transaction["transactionId"] and calls == [odd]


def test_handed_parse_and_own_parse_agree_with_the_library(catalog):
    """Through ``check`` (the parse the caller already made) the verifier decides as the library does."""
    verifier = AppStoreVerifiers(catalog, {default_chain().root.sha256})._verifiers[BUNDLE_ID, "Sandbox"]
    good = sign_jws(transaction())
    head, body, signature = good.split(".")
    tokens = [good, sign_jws(transaction(), other_chain()), sign_jws(transaction(), alg="ES384"), tamper_signature(good),
              tamper_payload(good, quantity=3), sign_jws(transaction(), header={"kid": "x"}), f"{head}=.{body}.{signature}",
              f"{head}.{body}.{signature}A"]
    for token in tokens:
        outcomes = []
        for decode in (lambda t: verifier.check(verifier._decode_signed_object, t, jws_reader.read(t)),
                       lambda t: SignedDataVerifier._decode_signed_object(verifier, t)):
            try:
                outcomes.append(("ok", decode(token)))
            except VerificationException as exc:
                outcomes.append(("refused", exc.status))
        assert outcomes[0] == outcomes[1], token
    assert verifier._handed.jws is None  # handed only while check runs


# ---------------------------------------------------------------- reading a JWS once (middleware.stores.jws)
def test_each_signed_part_is_read_once(catalog, monkeypatch):
    """The parse that picked the game is the one the verifier checks: no JWS is decoded twice."""
    verifiers = AppStoreVerifiers(catalog, {default_chain().root.sha256})
    reads, real = [], app_store_verify._read
    monkeypatch.setattr(app_store_verify, "_read", lambda token, what: reads.append(what) or real(token, what))
    assert verifiers.notification(signed_notification()).transaction["transactionId"]
    assert reads == ["signedPayload", "data.signedTransactionInfo"]
    reads.clear()
    assert verifiers.transaction(sign_jws(transaction())).transaction["transactionId"]
    assert reads == ["signedTransaction"]
    reads.clear()
    unverified(verifiers.notification, sign_jws(notification(signed_transaction=tamper_signature(sign_jws(transaction())))))
    assert reads == ["signedPayload", "data.signedTransactionInfo"]


def test_a_handed_parse_stands_only_for_its_own_string(catalog, stranger):
    """While ``check`` runs on one string, any other string the verifier decodes is read and checked."""
    verifier = AppStoreVerifiers(catalog, {default_chain().root.sha256})._verifiers[BUNDLE_ID, "Sandbox"]
    good = sign_jws(transaction())
    for bad in (tamper_signature(good), tamper_payload(good, quantity=2), sign_jws(transaction(), stranger)):
        with pytest.raises(VerificationException):
            verifier.check(lambda _, bad=bad: verifier.verify_and_decode_signed_transaction(bad), good, jws_reader.read(good))
    assert verifier.check(verifier.verify_and_decode_signed_transaction, good, jws_reader.read(good)).transactionId


def test_concurrent_checks_each_use_their_own_parse(catalog, monkeypatch):
    """The handed parse is per thread: threads checking on one verifier at once each use their own."""
    verifier = AppStoreVerifiers(catalog, {default_chain().root.sha256})._verifiers[BUNDLE_ID, "Sandbox"]
    signed = [sign_jws(transaction(transaction_id=str(2_000_000_000_100_000 + i))) for i in range(5)]
    expected = {token: jws_reader.read(token).payload for token in signed}
    signed += [tamper_signature(signed[0]), tamper_payload(signed[1], quantity=7)]
    expected.update({token: VerificationStatus.VERIFICATION_FAILURE for token in signed[5:]})
    barrier, results, reads, real = threading.Barrier(len(signed)), {}, [], app_store_verify._read
    monkeypatch.setattr(app_store_verify, "_read", lambda token, what: reads.append(what) or real(token, what))

    def verify(token):
        barrier.wait(timeout=10)  # every thread has handed its parse before any decodes
        return verifier._decode_signed_object(token)

    def work(token):
        try:
            results[token] = verifier.check(verify, token, jws_reader.read(token))
        except VerificationException as exc:
            results[token] = exc.status

    threads = [threading.Thread(target=work, args=(token,)) for token in signed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected and reads == []


def test_header_cache_is_bounded_and_keyed_by_the_exact_text():
    jws_reader._cached_header.cache_clear()
    good = sign_jws(transaction())
    head, body, signature = good.split(".")
    first = jws_reader.read(good)
    again = jws_reader.read(sign_jws(transaction(transaction_id="2000000000000777")))
    assert again.header is first.header and jws_reader._cached_header.cache_info().hits == 1
    # the same JSON in other text is decoded on its own, and keeps its own canonical flag
    padded = jws_reader.read(f"{head}=.{body}.{signature}")
    assert padded.header == first.header and padded.header is not first.header
    assert first.canonical and not padded.canonical
    spaced = jws_reader.read(f"{ca.b64url(json.dumps(first.header).encode())}.{body}.{signature}")
    assert spaced.header == first.header and spaced.header is not first.header and spaced.canonical
    other = jws_reader.read(sign_jws(transaction(), other_chain()))
    assert other.header["x5c"] != first.header["x5c"]
    assert jws_reader._cached_header.cache_info().currsize == 4
    # bounded: the oldest texts are forgotten
    for i in range(jws_reader.HEADER_CACHE_SIZE + 10):
        jws_reader.read(f"{ca.b64url(json.dumps({'alg': 'ES256', 'n': i}).encode())}.{body}.{signature}")
    info = jws_reader._cached_header.cache_info()
    assert info.currsize == info.maxsize == jws_reader.HEADER_CACHE_SIZE
    # a header text too long to keep is decoded every time, and not kept
    long_head = ca.b64url(json.dumps({"alg": "ES256", "pad": "x" * jws_reader.HEADER_CACHE_TEXT}).encode())
    assert jws_reader.read(f"{long_head}.{body}.{signature}").header["alg"] == "ES256"
    assert jws_reader._cached_header.cache_info().misses == info.misses
    # what fails to decode is never kept
    jws_reader._cached_header.cache_clear()
    for bad in ("e30=x", "e30+", "bm90IGpzb24", ca.b64url(b"[" * 10_000)):
        with pytest.raises(jws_reader.NotAJws):
            jws_reader.read(f"{bad}.{body}.{signature}")
    assert jws_reader._cached_header.cache_info().currsize == 0


def test_a_cached_header_vouches_for_nothing_else(verifiers):
    """With the header decoded from the cache, payload and signature are still checked in full."""
    good = sign_jws(transaction())
    assert verifiers.transaction(good).transaction["transactionId"]
    hits = jws_reader._cached_header.cache_info().hits
    head, _, signature = good.split(".")
    other_head, other_body, _ = sign_jws(transaction(transaction_id="2000000000000999")).split(".")
    assert other_head == head  # the same chain, the same header text
    unverified(verifiers.transaction, f"{head}.{other_body}.{signature}")  # another payload under this signature
    unverified(verifiers.transaction, tamper_payload(good, quantity=100))
    unverified(verifiers.transaction, tamper_signature(good))
    unverified(verifiers.transaction, f"{head}.{other_body}.{ca.b64url(b'x' * 64)}")
    signed = signed_notification("ONE_TIME_CHARGE")
    assert verifiers.notification(signed).transaction
    unverified(verifiers.notification, tamper_payload(signed, notificationType="REFUND"))
    unverified(verifiers.notification, tamper_signature(signed))
    inner = tamper_payload(sign_jws(transaction()), quantity=9)
    error = unverified(verifiers.notification, sign_jws(notification(signed_transaction=inner)))
    assert error.message.startswith("data.signedTransactionInfo: ")
    assert jws_reader._cached_header.cache_info().hits >= hits + 10


# ---------------------------------------------------------------- base64url segments
_OLD_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}\Z")
_OLD_CANONICAL = re.compile(r"[A-Za-z0-9_-]*\Z")


def reference_segment(text: str) -> tuple[bytes, bool]:
    """The regex-and-re-encode reading ``jws.segment`` replaced (app_store_verify's ``_segment``): the reference."""
    if not _OLD_SEGMENT.match(text) or len(text.rstrip("=")) % 4 == 1:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return raw, bool(_OLD_CANONICAL.match(text)) and base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text


def segment_outcome(function, text: str):
    try:
        return function(text)
    except ValueError:  # binascii.Error, UnicodeEncodeError: both functions raise nothing else
        return "ValueError"


def segment_inputs():
    rng = random.Random(20_240_613)
    alphabet = string.ascii_letters + string.digits + "-_"
    odd = "=+/ \n\t.!*\x00\x7fé\u0660Ａ"
    yield from ["", "=", "==", "===", "====", "A=B", "QUJD=", "QUJD==", "QUJD===", "QUJDRA=", "QUJ==", "QQ=", "QQ==",
                "QR==", "QUI=", "QUJ=", "\n", "QUJD\n", "QUJD=\n", " QUJD", "QU JD", "QU=D", "Q=UJ", "=QUJ", "==QU",
                "ab+c", "ab/c", "-_-_", "+/+/", "QUJD\x00", "QUJé", "٠١٢٣", "ＱＵＪＤ", "QUJ\u0660"]
    for text in itertools.product("AQw_-=+/! é", repeat=4):  # every short mix, padding anywhere
        yield "".join(text)
    for n in range(5):  # every last character, every padding, every length % 4
        for last in alphabet + odd:
            for padding in ("", "=", "==", "==="):
                yield "QUJD" * (n // 4) + "A" * (n % 4) + last + padding
    for size in range(48):
        for _ in range(40):
            encoded = base64.urlsafe_b64encode(rng.randbytes(size)).decode()
            body = encoded.rstrip("=")
            yield encoded
            yield body
            if body:
                yield body[:-1] + rng.choice(alphabet) + "=" * rng.randint(0, 3)  # spare bits set, odd padding
                cut = rng.randrange(len(body))
                yield body[:cut] + rng.choice(odd) + body[cut + 1:]
    for _ in range(20_000):
        chars = alphabet if rng.random() < 0.7 else alphabet + odd
        yield "".join(rng.choice(chars) for _ in range(rng.randint(0, 14))) + "=" * rng.choice((0, 0, 0, 1, 2, 3))
    token = sign_jws(notification(signed_transaction=sign_jws(transaction())))
    for part in token.split("."):
        yield from (part, part + "=", part + "==", part[:-1], part[1:], part + "A", part.replace("_", "/"))


def test_segment_reads_exactly_as_the_regex_reading_did():
    seen = kinds = 0
    ok = set()
    for text in segment_inputs():
        expected = segment_outcome(reference_segment, text)
        assert segment_outcome(jws_reader.segment, text) == expected, repr(text)
        seen += 1
        if expected != "ValueError":
            ok.add((len(text) % 4, expected[1]))
        else:
            kinds += 1
    assert seen > 40_000 and kinds > 10_000
    assert {(0, True), (0, False), (2, True), (2, False), (3, True), (3, False), (1, False)} <= ok  # every case met
