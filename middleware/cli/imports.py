"""``flask import ...``: past purchases into the ledger, wallets and inventory into Kraty (docs/migration.md).

Each command reads its file in batches of at most 1,000 rows, shows its progress on stderr, prints a summary
and the failed rows (``--json``: everything as JSON), and exits 0 when every row was applied or skipped, 1 when
a row failed or the import could not run (an unreadable file, an unknown game).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from flask.cli import AppGroup

from middleware.cli.table import JSON_OPTION, Column, echo_json, plural, progress, table
from middleware.services import services

from middleware.imports.files import Batches
from middleware.imports.kraty_migrate import migrate_batch
from middleware.imports.purchases import import_rows
from middleware.imports.rows import FORMATS, MAX_ROWS

group = AppGroup("import", help="Bring a studio's history in: past purchases, Kraty wallets and inventory.")

FILE = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
NAMESPACE = click.option("--namespace", "-n", required=True, help="The game (catalog namespace).")
BATCH = click.option("--batch-size", type=click.IntRange(1, MAX_ROWS), default=MAX_ROWS, show_default=True,
                     help="Rows per transaction (purchases) or per Kraty call (wallets, inventory).")
JOBS = click.option("--jobs", "-j", type=click.IntRange(1, 16), default=1, show_default=True,
                    help="Batches written at once, each in its own transaction (a database with cores to spare "
                         "takes more).")
FAILED_COLUMNS = [Column("row", "row"), Column("id", "id", 40), Column("code", "code", 24),
                  Column("reason", "reason", 100)]


def _game(namespace: str):
    game = services().catalog.game(namespace)
    if game is None:
        raise click.ClickException(f"no game has namespace {namespace!r} in the catalog")
    return game


def _batches(path: Path, size: int) -> Batches:
    try:
        return Batches(path, size)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


def in_order(work: Callable, batches: Iterable, jobs: int) -> Iterator:
    """``work(batch)`` for each batch, ``jobs`` at a time, results in batch order; at most ``2 * jobs`` batches
    read ahead, so memory stays bounded whatever the file's size."""
    if jobs == 1:
        yield from map(work, batches)
        return
    with ThreadPoolExecutor(jobs, thread_name_prefix="import") as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(work, batch))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Tally:
    """Counts by status and the failed rows (all a million-row import keeps in memory)."""

    def __init__(self):
        self.counts = {"applied": 0, "skipped": 0, "failed": 0}
        self.failed: list[dict] = []
        self.started = time.monotonic()

    def add(self, result: dict, shown_id: str | None, reason: str | None) -> None:
        self.counts[result["status"]] += 1
        if result["status"] == "failed":
            self.failed.append({**result, "id": shown_id, "reason": reason})

    def finish(self, as_json: bool, extra: dict, what: str) -> None:
        seconds = time.monotonic() - self.started
        rows = sum(self.counts.values())
        summary = {"rows": rows, **self.counts, **extra, "seconds": round(seconds, 3),
                   "rowsPerSecond": round(rows / seconds, 1) if seconds else None}
        if as_json:
            echo_json({**summary, "failures": self.failed})
        else:
            click.echo(f"{plural(rows, 'row')}: {self.counts['applied']} {what}, {self.counts['skipped']} skipped "
                       f"(already present), {self.counts['failed']} failed"
                       + (" (dry run: nothing written)" if extra.get("dryRun") else ""))
            if self.failed:
                click.echo(table(FAILED_COLUMNS, self.failed))
        click.echo(f"{rows} rows in {seconds:.1f} s ({summary['rowsPerSecond'] or 0:.0f} rows/s)", err=True)
        if self.failed:
            raise click.exceptions.Exit(1)


@group.command("purchases")
@FILE
@NAMESPACE
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="plain", show_default=True,
              help="plain: kraty-bridge's columns; revenuecat: RevenueCat's transactions export.")
@click.option("--dry-run", is_flag=True, help="Check every row against the catalog and the ledger; write nothing.")
@BATCH
@JOBS
@JSON_OPTION
def import_purchases(file: Path, namespace: str, fmt: str, dry_run: bool, batch_size: int, jobs: int,
                     as_json: bool):
    """Record the past purchases in FILE (CSV or JSON Lines) as orders granted elsewhere: Kraty is not called;
    a later refund takes the goods back, a receipt for one of them grants nothing."""
    game = _game(namespace)
    batches = _batches(file, batch_size)
    tally, svc = Tally(), services()
    with progress(batches, f"importing {plural(batches.rows, 'purchase')}") as bar:
        work = lambda batch: import_rows(svc, game, batch, fmt, dry_run=dry_run, actor="cli:import")  # noqa: E731
        for results in in_order(work, bar, jobs):
            for result in results:
                tally.add(result.as_dict(), result.transaction_id, result.reason)
    tally.finish(as_json, {"dryRun": dry_run}, "would be applied" if dry_run else "applied")


def _migrate(kind: str, file: Path, namespace: str, batch_size: int, as_json: bool) -> None:
    _game(namespace)
    client = services().kraty(namespace)
    batches = _batches(file, batch_size)
    tally = Tally()
    with progress(batches, f"migrating {plural(batches.rows, 'row')} to Kraty's {kind}") as bar:
        for batch in bar:
            for result in migrate_batch(client, kind, batch):
                tally.add(result.as_dict(), f"{result.player or '?'} {result.key or ''}".strip(), result.reason)
    tally.finish(as_json, {}, "applied")


def _migrate_command(kind: str, what: str, columns: str) -> None:
    @group.command(f"kraty-{kind}", help=f"Set players' {what} in Kraty (POST /migrate/{kind}) from FILE (CSV or "
                                         f"JSON Lines): {columns}, and optionally id (the studio's stable id of the "
                                         "row).")
    @FILE
    @NAMESPACE
    @BATCH
    @JSON_OPTION
    def command(file: Path, namespace: str, batch_size: int, as_json: bool):
        _migrate(kind, file, namespace, batch_size, as_json)


_migrate_command("wallets", "wallet balances", "player_id, currency, balance")
_migrate_command("inventory", "item quantities", "player_id, item, quantity")
