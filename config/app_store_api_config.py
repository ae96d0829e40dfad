"""The App Store Server API part of a game's ``[app_store]`` table: the in-app purchase key the bridge
signs its API calls with, and what it answers Apple's refund requests (``CONSUMPTION_REQUEST``).

    api_key_id = "ABCDEFGHIJ"                 # the key's id (App Store Connect > Users and Access > Integrations)
    api_issuer_id = "57246542-96fe-1a63-e053-0824d011072a"
    api_private_key = "SubscriptionKey_ABCDEFGHIJ.p8"   # relative to the catalog file
    consumption_info = true                   # answer CONSUMPTION_REQUEST (default: true once a key is given)
    refund_preference = "DECLINE"             # optional: DECLINE | GRANT_FULL | GRANT_PRORATED
    sample_content_provided = false           # did the game let the player try the item before buying

The three ``api_*`` keys come together or not at all. Without them the game gets no notification-history
backfill and sends no consumption information.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from config.toml_schema import Checked, Choice, Flag, join_path, read_bytes

REFUND_PREFERENCES = ("DECLINE", "GRANT_FULL", "GRANT_PRORATED")
API_KEYS = ("api_key_id", "api_issuer_id", "api_private_key")
KEY_ID_RULE = "must be the in-app purchase key's id (10 letters and digits)"


def _text(value) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= 200


# marshmallow fields added to AppStoreSchema (config/app_store_config.py)
SCHEMA_FIELDS = {
    "api_key_id": Checked(lambda v: isinstance(v, str) and v.isalnum() and len(v) == 10, KEY_ID_RULE),
    "api_issuer_id": Checked(_text, "must be the issuer id (a UUID, from App Store Connect)"),
    "api_private_key": Checked(_text, "must be the file name of the key (.p8, PEM)"),
    "consumption_info": Flag(load_default=True),
    "refund_preference": Choice(REFUND_PREFERENCES),
    "sample_content_provided": Flag(load_default=False),
}


@dataclass(frozen=True)
class AppStoreApiConfig:
    """How the bridge calls the App Store Server API for one game. ``repr`` hides the key."""

    key_id: str
    issuer_id: str
    private_key: bytes = field(repr=False)  # PEM (PKCS#8), as AppStoreServerAPIClient takes it
    private_key_path: str
    consumption_info: bool
    refund_preference: str | None
    sample_content_provided: bool


def load_api(data: dict, base_dir_path, where: tuple) -> tuple[AppStoreApiConfig | None, list[tuple[str, str]]]:
    """``data``: the checked table; ``base_dir_path(name)`` resolves a file name. (config, problems)."""
    given = [key for key in API_KEYS if key in data]
    if not given:
        return None, []
    if len(given) != len(API_KEYS):
        missing = ", ".join(key for key in API_KEYS if key not in data)
        return None, [(join_path(*where, missing.split(",")[0]),
                       f"{', '.join(given)} given without {missing}: the App Store Server API needs all three")]
    path = base_dir_path(data["api_private_key"].strip())
    raw, problem = read_bytes(path)
    if problem is None:
        try:
            key = serialization.load_pem_private_key(raw, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                problem = f"{path} is not an ES256 (P-256) private key"
        except (ValueError, TypeError):
            problem = f"{path} is not a PEM private key (the .p8 file App Store Connect gives)"
    if problem:
        return None, [(join_path(*where, "api_private_key"), problem)]
    return AppStoreApiConfig(
        key_id=data["api_key_id"], issuer_id=data["api_issuer_id"].strip(), private_key=raw, private_key_path=path,
        consumption_info=data["consumption_info"], refund_preference=data.get("refund_preference"),
        sample_content_provided=data["sample_content_provided"]), []
