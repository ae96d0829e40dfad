"""Who is calling our ``/v1`` APIs: the request's bearer API key, checked against the role and namespace a
call needs (keys are stored in ``middleware.ledger.api_keys``). Missing or unknown key -> 401; too weak -> 403."""
from __future__ import annotations

from contextlib import contextmanager

from flask import g, request

from middleware.api.errors import ApiError
from middleware.ledger.api_keys import allows, lookup, note_use
from middleware.ledger.models import ApiKey
from middleware.services import services


@contextmanager
def _key_session(svc):
    """A session for the key's lookup. On PostgreSQL in autocommit: the lookup is one statement (and "last used",
    when written, one more), so no BEGIN and ROLLBACK round trips around it. (SQLite keeps its usual session: its
    connections' transaction handling is set up once, on connect, and an isolation level reset would undo it.)"""
    if svc.engine.dialect.name != "postgresql":
        with svc.session() as session:
            yield session
        return
    with svc.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection, \
            svc.sessions(bind=connection) as session:
        yield session


def require(role: str, namespace: str | None = None) -> ApiKey:
    """The request's key, if it holds ``role`` (and may touch ``namespace``); else 401 / 403."""
    scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <API key>")
    with _key_session(services()) as session:
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
