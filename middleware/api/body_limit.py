"""The request body limit (``KB_MAX_BODY_BYTES``, Flask's ``MAX_CONTENT_LENGTH``), for every body.

Werkzeug refuses a ``Content-Length`` over the limit with 413, but a chunked body (no length) it
silently cuts at the limit, so a body over it was parsed truncated and answered 400 or 401. Here a
body without a length is read first, at most one byte past the limit: over it, 413; else it is handed
on, buffered. Every 413 answer says ``Connection: close``: its body was not read, so the
connection cannot carry another request (gunicorn, which sets that header itself, closes it through
the ``pre_request`` hook of ``config/gunicorn.conf.py``).
"""
from __future__ import annotations

import io

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length


def _read_at_most(stream, size: int) -> bytes:
    parts, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _bound_unsized_body() -> None:
    environ = request.environ
    if get_content_length(environ) is not None or not environ.get("wsgi.input_terminated"):
        return  # a sized body (Werkzeug enforces the limit), or one the server does not bound
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is None:
        return
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)  # still "terminated": Werkzeug reads it to its end


def _close_after_413(response):
    if response.status_code == 413:
        response.headers["Connection"] = "close"
    return response


def register(app: Flask) -> None:
    """Before anything reads the body; call before the blueprints are registered."""
    app.before_request(_bound_unsized_body)
    app.after_request(_close_after_413)
