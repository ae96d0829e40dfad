"""The app and services jobs run with, given to each job in one place (``job``).

The app is the worker entry point's (``python -m workers`` builds it once and calls ``use``), a test's, or, in a
plain ``rq worker``, one built on the first job from the app factory. That factory is found by its dotted path
(``APP_FACTORY``), the way RQ finds the job functions themselves: ``app.py`` imports ``workers.queues``, which
imports the jobs, so a job module cannot import ``app``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Flask
from rq.utils import import_attribute

from middleware.services import services

APP_FACTORY = "app.create_app"

_app: Flask | None = None


def use(app: Flask | None) -> None:
    """Make ``app`` the one jobs in this process run in (the worker entry point and tests call this)."""
    global _app
    _app = app


def app() -> Flask:
    global _app
    if _app is None:
        _app = import_attribute(APP_FACTORY)()  # a plain `rq worker` process: build the app on the first job
    return _app


def job(body: Callable[..., object]) -> Callable[..., object]:
    """A job: ``body(svc, *args)`` run inside the app with its services, enqueued and run as ``job(*args)``
    under ``body``'s own module and name (RQ stores ``workers.fulfil.fulfil``, as before)."""
    @functools.wraps(body)
    def run(*args, **kwargs):
        with app().app_context():
            return body(services(), *args, **kwargs)
    return run

