"""``flask keys``: create, list and revoke API keys for the ``/v1`` APIs (see api_keys.py)."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from middleware.ledger import api_keys
from middleware.cli.table import JSON_OPTION, Column, echo_json, iso, table, when
from middleware.ledger.models import ApiKey, utcnow
from middleware.services import services

keys = AppGroup("keys", help="API keys of the /v1 APIs: create (shown once), list, revoke.")


@keys.command("create")
@click.argument("name")
@click.argument("role", type=click.Choice(api_keys.ROLES))
@click.option("--namespace", "namespaces", multiple=True, help="Limit the key to this game (repeatable).")
@click.option("--expires-in", "expires_in", default=None, metavar="DURATION",
              help="The key stops working after this long: 30m, 12h, 90d, 2w. Default: never.")
def create(name, role, namespaces, expires_in):
    """Create a key NAME with ROLE; it is printed once, only its hash is kept."""
    svc = services()
    expires_at = None
    if expires_in is not None:
        try:
            expires_at = utcnow() + api_keys.parse_duration(expires_in)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires-in") from None
    unknown = [ns for ns in namespaces if svc.catalog.game(ns) is None]
    if unknown:
        raise click.BadParameter(f"unknown namespace(s): {', '.join(unknown)}", param_hint="--namespace")
    if not (0 < len(name) <= 64 and name.isprintable()):
        raise click.BadParameter("1-64 printable characters", param_hint="NAME")
    with svc.session() as session:
        key = api_keys.create(session, name, role, list(namespaces), expires_at)
        try:
            session.commit()
        except IntegrityError:
            raise click.ClickException(f"a key named {name} exists") from None
    click.echo(f"key:  {key}")
    click.echo(f"name: {name}  role: {role}  namespaces: {', '.join(namespaces) or 'all'}  "
               f"expires: {when(expires_at) if expires_at else 'never'}")
    click.echo("The key is shown once; only its hash is stored.")


COLUMNS = (
    Column("NAME", "name", None), Column("ROLE", "role"), Column("NAMESPACES", "games", 40),
    Column("CREATED", "created"), Column("EXPIRES", "expires"), Column("LAST USED", "lastUsed"),
    Column("REVOKED", "revoked"),
)


def _view(row: ApiKey) -> dict:
    return {"name": row.name, "role": row.role, "namespaces": row.namespaces, "createdAt": iso(row.created_at),
            "revokedAt": iso(row.revoked_at), "expiresAt": iso(row.expires_at), "lastUsedAt": iso(row.last_used_at)}


@keys.command("list")
@JSON_OPTION
def list_keys(as_json):
    """Every key: name, role, games (all when none are named), created, expires, last used (to the minute),
    revoked. Never the key itself."""
    with services().session() as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
        views = [_view(row) for row in rows]
        cells = [{**view, "games": row.namespaces or ["all"], "created": when(row.created_at),
                  "revoked": when(row.revoked_at), "expires": when(row.expires_at),
                  "lastUsed": when(row.last_used_at)} for row, view in zip(rows, views, strict=True)]
    if as_json:
        echo_json(views)
    else:
        click.echo(table(COLUMNS, cells, empty="no API keys (flask keys create NAME ROLE)"))


@keys.command("revoke")
@click.argument("name")
def revoke(name):
    """Revoke the key NAME: it stops working at once."""
    with services().session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == name)).one_or_none()
        if row is None:
            raise click.ClickException(f"no key named {name}")
        row.revoked_at = row.revoked_at or utcnow()
        session.commit()
    click.echo(f"{name} revoked")
