"""Copies of the test catalog (config/examples/catalog.toml, the ``catalog_path`` fixture) with changes: the one
way the tests write a catalog of their own."""
from __future__ import annotations

from pathlib import Path

CURRENCIES = "\n# ---------------------------------------------------------------- currencies (COINS)"
BUNDLES = "\n# ---------------------------------------------------------------- bundles"


def changed_text(catalog_path: str, *, replace: dict | None = None, before: dict | None = None,
                 sandbox: bool = True) -> str:
    """The test catalog's text with each ``replace`` {old: new} done once (the old text must be there), each
    ``before`` {marker: text} inserted before its marker, and ``allow_sandbox = false`` unless ``sandbox``."""
    text = Path(catalog_path).read_text()
    if not sandbox:
        text = text.replace("allow_sandbox = true", "allow_sandbox = false", 1)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new, 1)
    for marker, table in (before or {}).items():
        text = text.replace(marker, table + marker, 1)
    return text


def write_changed(catalog_path: str, target, **changes) -> str:
    """``changed_text`` written to ``target``; its path."""
    target.write_text(changed_text(catalog_path, **changes))
    return str(target)


def with_kraty_secrets(catalog_path: str, target, *secrets: str) -> str:
    """A copy whose demo game takes Kraty's webhooks signed with any of ``secrets``; its path."""
    listed = ", ".join(f'"{secret}"' for secret in secrets)
    return write_changed(catalog_path, target, replace={
        'negative_balance_policy = "fail"': f'negative_balance_policy = "fail"\nkraty_webhook_secrets = [{listed}]'})
