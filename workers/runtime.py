"""The app a job runs in: the worker entry point's, a test's, or one built from the environment."""
from __future__ import annotations

from flask import Flask

from app import create_app

_app: Flask | None = None


def use(app: Flask | None) -> None:
    """Make ``app`` the one jobs in this process run in (the worker entry point and tests call this)."""
    global _app
    _app = app


def app() -> Flask:
    global _app
    if _app is None:
        _app = create_app()  # a plain `rq worker` process: build the app on the first job
    return _app
