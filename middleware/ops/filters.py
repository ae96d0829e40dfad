"""The filters every ops list shares: a page's limit and game checked, then "each given column equals its
value, only the games the key may see, within the time range" as WHERE clauses."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from middleware.ops.base import Actor, MAX_PAGE, OpsError, utc


def check_page(actor: Actor, limit: int, namespace: str | None) -> None:
    """Refuse a page size outside 1-``MAX_PAGE`` (422) and a game the key may not see (403)."""
    if not 1 <= limit <= MAX_PAGE:
        raise OpsError(422, "validation_failed", f"limit must be 1-{MAX_PAGE}", {"fields": {"limit": ["1-200"]}})
    if namespace is not None and not actor.sees(namespace):
        raise OpsError(403, "forbidden", f"this key may not see namespace {namespace}")


def in_range(column, after: datetime | None, before: datetime | None) -> list:
    """``column`` from ``after`` (inclusive) to ``before`` (exclusive), each bound only when given."""
    where = []
    if after is not None:
        where.append(column >= utc(after))
    if before is not None:
        where.append(column < utc(before))
    return where


def filters(actor: Actor, namespace_column, equals: Iterable[tuple], time_column=None,
            after: datetime | None = None, before: datetime | None = None) -> list:
    """The WHERE clauses of an ops list: each ``(column, value)`` of ``equals`` whose value is given, the
    games ``actor`` may see (``namespace_column``), and ``time_column`` within [``after``, ``before``)."""
    where = [column == value for column, value in equals if value is not None]
    if actor.namespaces is not None:
        where.append(namespace_column.in_(actor.namespaces))
    if time_column is not None:
        where += in_range(time_column, after, before)
    return where
