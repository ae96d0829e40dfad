"""The ops web console at ``/console``: server-rendered pages over ``middleware.ops`` (see docs/console.md).

Sign in with an API key (viewer, operator or admin) or with OpenID Connect (``console.signin``); the session is
kept on the server (``console.sessions``) and the signed cookie (``KB_SECRET_KEY``) holds only its random token. Every POST carries the session's CSRF token. The pages
only call ``middleware.ops`` and ``middleware.sinks.replay``, as the ops API and the CLI do.
"""
