"""The ops web console at ``/console``: server-rendered pages over ``middleware.ops`` (see docs/console.md).

Sign in with an API key (viewer, operator or admin); the session is a signed cookie (``KB_SECRET_KEY``) holding
the key's id and a fragment of its hash, never the key. Every POST carries the session's CSRF token. The pages
only call ``middleware.ops`` and ``middleware.sinks.replay``, as the ops API and the CLI do.
"""
