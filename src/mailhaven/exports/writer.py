"""Write an export zip: `export.json` streamed row by row, a CSV per category, a README."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mailhaven.exports.registry import BATCH, Category, Scope

SCHEMA_NAME, SCHEMA_VERSION = "mailhaven-export", 1
JSON_NAME, README_NAME = "export.json", "README.txt"
Progress = Callable[[int, int], None]
# One encoder for every row and cell: `json.dumps(..., ensure_ascii=False)` builds a new one
# per call, a third of an export's time.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class _Tally:
    """Rows written against rows expected, told to `progress` once per batch."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def add(self, rows: int) -> None:
        self.done += rows
        self.total = max(self.total, self.done)  # rows may arrive while we count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return _encode(value)
    return value


class _Table:
    """One category's CSV: its declared columns, nested values as JSON text."""

    def __init__(self, stream: IO[str], category: Category) -> None:
        self.category = category
        self.columns = set(category.columns)
        header = [*category.columns, *(("extra",) if category.open_ended else ())]
        self.writer = csv.writer(stream)
        self.writer.writerow(header)

    def write(self, row: dict) -> None:
        extra = {k: v for k, v in row.items() if k not in self.columns}
        if extra and not self.category.open_ended:
            # A row the schema doesn't describe: a programming error, not the subject's data.
            raise ValueError(f"export category {self.category.name!r} has undeclared "
                             f"columns {sorted(extra)}")
        cells = [_cell(row.get(c)) for c in self.category.columns]
        if self.category.open_ended:
            cells.append(_cell(extra) if extra else "")
        self.writer.writerow(cells)


def write_zip(path: Path, *, scope: Scope, subject: dict, generated_at: str,
              categories: list[Category], progress: Progress | None = None) -> dict[str, int]:
    """Write the export to `path` (replaced only once complete); the rows of each category.

    Rows go to the JSON entry as they are read; each CSV is spooled beside the target (a zip
    takes one entry at a time) and added after. Files are private to the user (0600/0700)."""
    tally = _Tally(progress, sum(c.size(scope) for c in categories))
    tally.add(0)
    fd, partial = tempfile.mkstemp(prefix=".export-", suffix=".zip.partial", dir=path.parent)
    counts: dict[str, int] = {}
    try:
        with (os.fdopen(fd, "wb") as raw,
              zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive,
              tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as spool):
            entry = zipfile.ZipInfo(JSON_NAME, time.localtime()[:6])  # as the CSVs get
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as document:
                head = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION,
                        "generated_at": generated_at, "subject": subject}
                document.write(_encode(head)[:-1].encode())
                document.write(b', "categories": {')
                for i, category in enumerate(categories):
                    document.write(f'{"," if i else ""}\n{json.dumps(category.name)}: ['.encode())
                    with open(Path(spool) / f"{category.name}.csv", "w", newline="",
                              encoding="utf-8") as stream:
                        counts[category.name] = _write_rows(document, _Table(stream, category),
                                                            category, scope, tally)
                    document.write(b"\n]")
                document.write(b"\n}}\n")
            for category in categories:
                archive.write(Path(spool) / f"{category.name}.csv", f"{category.name}.csv")
            archive.writestr(README_NAME, readme(subject, generated_at, counts))
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return counts


def _write_rows(document: IO[bytes], table: _Table, category: Category, scope: Scope,
                tally: _Tally) -> int:
    written = 0
    pending: list[str] = []

    def flush() -> None:
        nonlocal written, pending
        document.write((b"," if written else b"") + b"\n" + ",\n".join(pending).encode())
        written += len(pending)
        tally.add(len(pending))
        pending = []

    for row in category.rows(scope):
        pending.append(_encode(row))
        table.write(row)
        if len(pending) == BATCH:
            flush()
    if pending:
        flush()
    return written


def readme(subject: dict, generated_at: str, counts: dict[str, int]) -> str:
    who = (f"the recipient {subject['address']} of account {subject['account_id']}"
           if "address" in subject else f"the holder of account {subject['account_id']}")
    width = max((len(name) for name in counts), default=0) + len(".csv") + 2
    files = "\n".join(f"  {name + '.csv':<{width}}{n} rows" for name, n in counts.items())
    return f"""Mailhaven data export
=====================
Everything Mailhaven holds about {who},
generated at {generated_at}.

{JSON_NAME}
  One JSON document: {{"schema": "{SCHEMA_NAME}", "version": {SCHEMA_VERSION}, "generated_at",
  "subject", "categories": {{name: [rows]}}}}. Its JSON Schema, export.schema.json, is
  published with Mailhaven (src/mailhaven/exports/) and explained in docs/privacy.md.
  A later version number means an incompatible change; added fields are not one.

One CSV per category, the same rows as the JSON (UTF-8, a header row; nested values are
JSON text, empty cells are null):
{files}

Times are ISO 8601 in UTC, except in events, which keep Mailgun's event format (epoch
seconds in "timestamp"). Events are those that can still be read: an erased person's are
not. Message bodies are not part of an export; messages lists what was sent, not what it
said. API keys appear by their last characters only; no secret is ever exported.
"""
