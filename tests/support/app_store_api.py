"""App Store Server API tests: the fake (emulator/app_store_api.py) served on loopback, an in-app purchase
key registered in it, and an app whose demo game has that key in its ``[app_store]`` table."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.app_store_api import create_app_store_app

from tests.support.app_store import Apple, write_catalog
from tests.support.apple_ca import BUNDLE_ID, default_chain, sign_jws, signed_notification, transaction
from tests.support.wsgi_server import AdminClient, serve

KEY_ID, ISSUER_ID = "KRATYTEST1", "57246542-96fe-1a63-e053-0824d011072a"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class AppleApiFake(AdminClient):
    ADMIN = "/_apple"

    def add_key(self, key, key_id: str = KEY_ID, issuer_id: str = ISSUER_ID, bundle_id: str = BUNDLE_ID) -> dict:
        return self._call("POST", "/keys", {"keyId": key_id, "issuerId": issuer_id, "bundleId": bundle_id,
                                            "publicKey": public_pem(key)})

    def sent(self, signed_payload: str, delivered: bool = False) -> dict:
        """Apple sent (``delivered``) or tried to send this notification."""
        return self._call("POST", "/notifications", {"signedPayload": signed_payload, "delivered": delivered})

    def consumption(self) -> list[dict]:
        return self._call("GET", "/consumption")["requests"]


@pytest.fixture(scope="session")
def apple_api_url():
    with serve(create_app_store_app()) as url:
        yield url


@pytest.fixture
def apple_api(apple_api_url):
    yield from AppleApiFake(apple_api_url).fresh()


def api_table(key_file: str, **extra: str) -> str:
    lines = [f'api_key_id = "{KEY_ID}"', f'api_issuer_id = "{ISSUER_ID}"', f'api_private_key = "{key_file}"']
    return "\n".join(lines + [f"{name} = {value}" for name, value in extra.items()]) + "\n"


def write_api_catalog(catalog_path: str, directory, key, **extra: str) -> str:
    """The demo game takes App Store data (players by appAccountToken) and has the API key ``key``."""
    (directory / "SubscriptionKey.p8").write_bytes(pem(key))
    path = write_catalog(catalog_path, directory, player_ids="app_account_token")
    text = Path(path).read_text().replace('player_ids = "app_account_token"\n',
                                     'player_ids = "app_account_token"\n' + api_table("SubscriptionKey.p8", **extra), 1)
    out = directory / "catalog-apple-api.toml"
    out.write_text(text)
    return str(out)


def make_apple(make_app, catalog_path, tmp_path, apple_api, key=None, settings: dict | None = None,
               **extra: str) -> Apple:
    """The app; ``extra``: more lines of the [app_store] table; ``settings``: more settings."""
    key = key or new_key()
    apple_api.add_key(key)
    app = make_app(**(settings or {}), catalog_path=write_api_catalog(catalog_path, tmp_path, key, **extra),
                   apple_root_sha256=frozenset({default_chain().root.sha256.upper()}),
                   apple_api_base=f"{apple_api.url}/production", apple_sandbox_api_base=f"{apple_api.url}/sandbox")
    return Apple(app)


def player() -> str:
    return str(uuid.uuid4())


def signed(kind: str, txid: str, who: str, **tx) -> str:
    """A signed notification of ``kind`` about transaction ``txid`` bought by player ``who``."""
    return signed_notification(kind, tx=transaction(transaction_id=txid, app_account_token=who, **tx))


__all__ = ["AppleApiFake", "apple_api", "apple_api_url", "make_apple", "new_key", "pem", "player", "sign_jws",
           "signed", "KEY_ID", "ISSUER_ID"]
