"""A request body parsed as JSON, with bounded work and only what can be stored and read back.

``json.loads`` raises ``RecursionError`` (not a ValueError) on nesting deeper than the interpreter's
recursion limit, accepts ``NaN``/``Infinity`` (not JSON; PostgreSQL's json type refuses them) and
decodes a ``\\ud800`` escape to a lone surrogate, which no UTF-8 column can hold. ``parse`` answers None
for all of these, and for nesting deeper than ``MAX_DEPTH`` (which a worker reading it back could not
walk safely): the caller answers 400. Its work is one pass of the C decoder over the body (already
bounded by ``KB_MAX_BODY_BYTES``) and two scans in C; the walk and a re-encoding only for a body that could
nest too deep or hold an escaped surrogate.
"""
from __future__ import annotations

import json
import re

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
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


def _may_nest_deeper(raw: bytes | str) -> bool:
    """Whether ``raw`` could nest deeper than ``MAX_DEPTH``: only if it opens more arrays and objects than that
    (counted by C's ``count``, brackets inside strings included: an overcount only costs the walk)."""
    if isinstance(raw, str):
        return raw.count("{") + raw.count("[") > MAX_DEPTH
    return raw.count(b"{") + raw.count(b"[") > MAX_DEPTH


def _may_hold_surrogate(raw: bytes | str) -> bool:
    """Whether a ``\\uD800``-``\\uDFFF`` escape could be in ``raw`` (valid UTF-8 cannot carry one otherwise; an
    escaped backslash before "ud8.." is a false alarm that only costs the check)."""
    return (_SURROGATE_ESCAPE if isinstance(raw, str) else _SURROGATE_ESCAPE_BYTES).search(raw) is not None


def parse(raw: bytes | str):
    """The JSON value of ``raw``, or None if it is not JSON that every column can store as text. The depth walk
    and the re-encoding run only for the bodies that could fail them (``_may_nest_deeper``,
    ``_may_hold_surrogate``): a store's event is decoded once."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
        if _may_nest_deeper(raw) and not _depth_ok(value):
            return None
        if _may_hold_surrogate(raw):
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be encoded
    except (ValueError, RecursionError):  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        return None
    return value
