"""What every ``flask`` command prints with: aligned tables, ``--json``, timestamps, progress on stderr.

- :func:`table` lays rows out under headers, each column as wide as its widest cell up to the column's
  limit; longer cells end in an ellipsis (``--json`` always has the full values). ``None`` shows as ``-``.
- :data:`JSON_OPTION` is the ``--json`` flag of the list and show commands; :func:`echo_json` prints a value
  (a list for the list commands, an object for show) as indented JSON with ISO 8601 UTC times.
- :func:`when` formats a time for a table: ISO 8601 in UTC to the second (``2026-11-21T10:00:00Z``).
- :func:`progress` wraps the items of a long job: a ``click.progressbar`` on stderr when stderr is a
  terminal, else a few plain ``label: n/total`` lines on stderr (logs, cron), so stdout stays parseable.
- :func:`styled` colours a cell only when stdout is a terminal.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import click

ELLIPSIS = "…"

JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (full values, ISO 8601 UTC times) instead of a table.")
YES_OPTION = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@dataclass(frozen=True)
class Column:
    header: str
    key: str | None = None          # the row's key (rows are dicts); default: the header lower-cased
    max_width: int | None = 40      # None: never truncated (ids people copy into other commands)
    align: str = "<"                # "<" left, ">" right (numbers)
    style: Any = None               # a function cell text -> click.style keyword arguments, or None

    @property
    def field(self) -> str:
        return self.key or self.header.lower()


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``2026-11-21T10:00:00Z``; without an offset: UTC) as UTC; BadParameter if not one."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (2026-11-21T10:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class IsoTime(click.ParamType):
    """A ``--since`` style option: an ISO 8601 time, UTC when it names no offset."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


ISO_TIME = IsoTime()


def when(value: datetime | None) -> str | None:
    """``2026-11-21T10:00:00Z``: a time as ISO 8601 in UTC, to the second (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(value: datetime | None) -> str | None:
    """A time for JSON: ISO 8601 in UTC, full precision, ``Z`` (like the /v1 API)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cell(value: Any) -> str:
    """The text of one cell: ``-`` for nothing, one line (newlines and tabs become spaces)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return when(value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return " ".join(str(value).split())


def truncate(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when something was cut."""
    if width is None or len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def stdout_is_tty() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def styled(text: str, **style) -> str:
    """``text`` styled (colour, bold) when stdout is a terminal; as is otherwise (pipes, files, tests)."""
    return click.style(text, **style) if style and stdout_is_tty() else text


def table(columns: Sequence[Column], rows: Iterable[dict], empty: str = "nothing found") -> str:
    """The rows under the columns' headers, aligned; ``empty`` when there are no rows."""
    texts = [[truncate(cell(row.get(c.field)), c.max_width) for c in columns] for row in rows]
    if not texts:
        return empty
    widths = [max(len(c.header), *(len(r[i]) for r in texts)) for i, c in enumerate(columns)]
    last = len(columns) - 1

    def line(values: Sequence[str], header: bool = False) -> str:
        parts = []
        for i, (c, text) in enumerate(zip(columns, values, strict=True)):
            padded = text if i == last and c.align == "<" else f"{text:{c.align}{widths[i]}}"
            if header:
                padded = styled(padded, bold=True)
            elif c.style is not None and text != "-":
                padded = styled(padded, **(c.style(text) or {}))
            parts.append(padded)
        return "  ".join(parts).rstrip()

    return "\n".join([line([c.header for c in columns], header=True), *(line(r) for r in texts)])


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """A header block: ``label:  value`` lines, the values aligned."""
    width = max(len(label) for label, _ in pairs) + 1
    return "\n".join(f"{label + ':':<{width}}  {cell(value)}" for label, value in pairs)


def section(title: str) -> str:
    return styled(title, bold=True, underline=True)


def echo_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (datetimes as ISO 8601 UTC)."""
    click.echo(json.dumps(value, indent=2, default=_default, ensure_ascii=False))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def state_style(text: str) -> dict:
    """Colours of order, item, event and delivery states: green done, red failed, yellow under way."""
    upper = text.upper()
    if "FAIL" in upper or upper in ("DEAD", "DISABLED", "REJECTED") or upper.startswith("DISABLED"):
        return {"fg": "red"}
    if upper in ("FULFILLED", "GRANTED", "DELIVERED", "PROCESSED", "REVOKED", "RESOLVED", "ENABLED", "APPLIED"):
        return {"fg": "green"}
    if upper in ("RECEIVED", "FULFILLING", "REVOKING", "PENDING", "RECORDED"):
        return {"fg": "yellow"}
    return {}


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


class _LineProgress:
    """Progress for a stream that is not a terminal: ``label: n/total`` at every tenth and at the end."""

    def __init__(self, items: Sequence, label: str, file: IO[str]):
        self.items, self.label, self.file = items, label, file

    def __enter__(self) -> Iterator:
        return self._iterate()

    def __exit__(self, *exc) -> None:
        return None

    def _iterate(self) -> Iterator:
        total, shown = len(self.items), 0
        click.echo(f"{self.label}: 0/{total}", file=self.file)
        for done, item in enumerate(self.items, start=1):
            yield item
            if done * 10 // total > shown:
                shown = done * 10 // total
                click.echo(f"{self.label}: {done}/{total}", file=self.file)


def progress(items: Sequence, label: str, file: IO[str] | None = None):
    """A context manager giving ``items`` back one by one while showing how far the work is, on stderr::

        with progress(ids, "replaying events") as bar:
            for event_id in bar:
                ...
    """
    file = file if file is not None else sys.stderr
    if file.isatty():
        return click.progressbar(items, label=label, file=file, show_pos=True, show_eta=True)
    return _LineProgress(items, label, file)
