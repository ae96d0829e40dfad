"""Secrets from files: ``KB_SECRET_KEY_FILE=/run/secrets/kb_secret_key`` instead of ``KB_SECRET_KEY=...``.

For each setting of ``FILE_SETTINGS``, ``<NAME>_FILE`` names a file whose content (less a trailing newline)
is the value: Docker and Kubernetes secrets, systemd's ``LoadCredential``, a vault agent's rendered files.
Setting both the variable and its ``_FILE`` is refused, as is a file that cannot be read or is empty.

``KB_SECRET_KEY`` is a comma-separated list of keys (the first signs, every one verifies); in a file, one key
per line works too. The list is kept comma-separated in the settings.
"""
from __future__ import annotations

from collections.abc import Mapping

FILE_SETTINGS = ("KB_DATABASE_URL", "KB_REDIS_URL", "KB_SECRET_KEY", "KB_METRICS_KEY", "KB_REDIS_SENTINEL_PASSWORD",
                 "KB_OIDC_CLIENT_SECRET")
SUFFIX = "_FILE"


class SecretFileError(Exception):
    """A ``*_FILE`` setting cannot be used; the message names it."""


def read_secret_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{name}{SUFFIX}: cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}"
                              ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SecretFileError(f"{name}{SUFFIX}: {path} is empty")
    if len(lines) > 1 and name != "KB_SECRET_KEY":
        raise SecretFileError(f"{name}{SUFFIX}: {path} holds more than one line")
    return ",".join(lines)


def with_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each ``<NAME>_FILE`` replaced by ``<NAME>`` = the file's content."""
    resolved = dict(environ)
    for name in FILE_SETTINGS:
        path = resolved.pop(name + SUFFIX, "")
        if not path:
            continue
        if resolved.get(name):
            raise SecretFileError(f"{name}{SUFFIX}: {name} is set too; set only one of them")
        resolved[name] = read_secret_file(name, path)
    return resolved


def split_keys(value: str | None) -> tuple[str, ...]:
    """``KB_SECRET_KEY``'s keys, the signing one first: ``"new,old"`` -> ``("new", "old")``."""
    return tuple(key.strip() for key in (value or "").split(",") if key.strip())
