"""Reading an import file: CSV (comma or semicolon delimited, with a header) or JSON Lines, gzipped or not, in
batches of rows — streamed, so a file of millions of rows never sits in memory.

A row is ``(number, raw)``: its 1-based number among the data rows, and a dict (CSV: header -> cell text; JSON
Lines: the object) or, for a line that is not JSON, the :class:`BadLine` saying so.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(1 << 20)


@dataclass(frozen=True)
class BadLine:
    problem: str


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def is_json_lines(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        return True
    if name.endswith(".csv"):
        return False
    with _open(path) as stream:
        for line in stream:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _csv_rows(stream) -> Iterator[dict]:
    header = stream.readline()
    delimiter = ";" if header.count(";") > header.count(",") else ","
    columns = next(csv.reader([header], delimiter=delimiter), [])
    for cells in csv.reader(stream, delimiter=delimiter):
        if not any(cell.strip() for cell in cells):
            continue
        yield dict(zip(columns, cells))


def _json_rows(stream) -> Iterator[dict | BadLine]:
    for line in stream:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            yield BadLine(f"not a JSON object: {exc}")
        except RecursionError:
            yield BadLine("not a JSON object: nested too deeply")


def rows(path: Path) -> Iterator[tuple[int, dict | BadLine]]:
    with _open(path) as stream:
        source = _json_rows(stream) if is_json_lines(path) else _csv_rows(stream)
        yield from enumerate(source, start=1)


class Batches:
    """The file's rows in lists of at most ``size``; ``len()`` is the number of batches (counted first, for the
    progress bar), ``rows`` the number of rows."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size
        self.rows = sum(1 for _ in rows(path))

    def __len__(self) -> int:
        return -(-self.rows // self.size)

    def __iter__(self) -> Iterator[list[tuple[int, dict | BadLine]]]:
        batch = []
        for row in rows(self.path):
            batch.append(row)
            if len(batch) == self.size:
                yield batch
                batch = []
        if batch:
            yield batch
