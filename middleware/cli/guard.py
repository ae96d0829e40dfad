"""The ``flask`` CLI in a wrong environment: one line on stderr and a non-zero exit, never a traceback.

- A bad setting or configuration file: ``Error: KB_LOG_LEVEL: expected ...`` (app.py calls :func:`refuse`).
- The database unreachable: ``Error: cannot use the database (postgresql+psycopg://kb:***@db/kb): ...``.
- Redis unreachable, for the commands that enqueue work (:data:`NEEDS_REDIS`): checked with a PING before the
  command changes anything, so an operator is never told "done" while nothing can run it.
- Beside ``make run``, :func:`use_run_environment` takes its Redis, ledger and catalog (config/run_environment.py).
"""
from __future__ import annotations

import functools
import os

import click
from flask.cli import with_appcontext
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from config import run_environment
from config.settings import ROOT
from middleware.services import services

# Commands that enqueue (directly, or through the ops actions' next step); the others need the database only.
NEEDS_REDIS = {"reconcile", "orders retry", "orders revoke", "orders resolve", "events replay", "sinks replay",
               "sinks enable", "google poll-voided"}


def in_cli() -> bool:
    """Is the app being built by a command line (flask's)?"""
    return click.get_current_context(silent=True) is not None


def use_run_environment() -> None:
    message = run_environment.apply(os.environ, ROOT)
    if message:
        click.echo(message, err=True)


def refuse(exc: Exception) -> None:
    """In the CLI, a configuration problem ends the command with its message only (exit status 1)."""
    if in_cli():
        raise click.ClickException(str(exc)) from None


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable URL)"


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


def _redis_url() -> str:
    url = services().settings.redis_url
    return _shown(url) if "://" in url and not url.startswith("unix://") else url


def _guarded(path: str, callback):
    @functools.wraps(callback)
    @with_appcontext
    def run(*args, **kwargs):
        try:
            if path in NEEDS_REDIS:
                services().redis.ping()
            return callback(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise click.ClickException(f"cannot reach Redis ({_redis_url()}): {_first_line(exc)}; nothing was "
                                       "done") from None
        except DBAPIError as exc:
            if not exc.connection_invalidated and not _unreachable(exc):
                raise
            raise click.ClickException(f"cannot use the database ({_shown(services().settings.database_url)}): "
                                       f"{_first_line(exc)}") from None
    run.kb_guarded = True
    return run


def _unreachable(exc: DBAPIError) -> bool:
    """A connection that could not be made (or was lost), not a query the database refused."""
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    return name == "OperationalError" or name == "InterfaceError"


def guard(group: click.Group, prefix: str = "") -> None:
    """Wrap every command under ``group`` (the app's CLI) as described above."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            guard(command, f"{path} ")
        elif command.callback is not None and not getattr(command.callback, "kb_guarded", False):  # once
            command.callback = _guarded(path, command.callback)
