"""Who is calling our ``/v1`` APIs: the request's bearer API key, checked against the role and namespace a
call needs (keys are stored in ``middleware.ledger.api_keys``). Missing or unknown key -> 401; too weak -> 403."""
from __future__ import annotations

from flask import g, request

from middleware.api.errors import ApiError
from middleware.ledger.api_keys import allows, lookup, note_use
from middleware.ledger.models import ApiKey
from middleware.services import services


def require(role: str, namespace: str | None = None) -> ApiKey:
    """The request's key, if it holds ``role`` (and may touch ``namespace``); else 401 / 403."""
    scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <API key>")
    with services().read_session() as session:  # the lookup: one statement (and "last used", when written, one more)
        row, problem = lookup(session, key.strip())
        if row is None:
            raise ApiError(401, "unauthenticated", problem)
        note_use(session, row)
        session.expunge(row)
    if not allows(row.role, role):
        raise ApiError(403, "forbidden", f"this call needs the {role} role; the key {row.name} has {row.role}")
    if namespace is not None and row.namespaces is not None and namespace not in row.namespaces:
        raise ApiError(403, "forbidden", f"the key {row.name} may not touch namespace {namespace}")
    g.api_key = row
    return row
