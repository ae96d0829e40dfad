"""A request body parsed as JSON, with bounded work and only what can be stored and read back.

``json.loads`` raises ``RecursionError`` (not a ValueError) on nesting deeper than the interpreter's
recursion limit, accepts ``NaN``/``Infinity`` (not JSON; PostgreSQL's json type refuses them) and
decodes a ``\\ud800`` escape to a lone surrogate, which no UTF-8 column can hold. ``parse`` answers None
for all of these, and for nesting deeper than ``MAX_DEPTH`` (which a worker reading it back could not
walk safely): the caller answers 400. Its work is one pass of the C decoder over the body (already
bounded by ``KB_MAX_BODY_BYTES``) and, for what parsed, one walk and one re-encoding.
"""
from __future__ import annotations

import json

MAX_DEPTH = 64  # no store's event nests deeper than about 15


def _depth_ok(value, limit: int = MAX_DEPTH) -> bool:
    """No array or object of ``value`` nests deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def parse(raw: bytes | str):
    """The JSON value of ``raw``, or None if it is not JSON that every column can store as text."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
        if not _depth_ok(value):
            return None
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be encoded
    except (ValueError, RecursionError):  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        return None
    return value
