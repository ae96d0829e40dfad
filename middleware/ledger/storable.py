"""Text the ledger can store: PostgreSQL's text refuses NUL characters, and UTF-8 cannot encode an unpaired
UTF-16 surrogate (JSON's ``"\\ud800"``). Requests holding either are refused with a 400 at the door (the
``/v1`` argument parser, the console) instead of failing with a 500 in the database."""
from __future__ import annotations

import re

UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
MESSAGE = "must not contain NUL characters (\\u0000, %00) or unpaired surrogates (\\ud800-\\udfff)"


def unstorable(data) -> bool:
    """Whether a string, or a decoded JSON value (any string, key or value in it), holds unstorable text."""
    stack = [data]
    while stack:  # iterative: JSON nested as deep as the decoder allows is walked without recursion
        item = stack.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
