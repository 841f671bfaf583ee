"""The backup file: a zip of one manifest and one JSON-lines file of rows per table.

Logical rather than `pg_dump` or a file copy, so that one format restores into SQLite or
PostgreSQL and the restore runs in our code (where the erasure ledger is re-applied). Each
line is a JSON array of one row's values in the manifest's column order; bytes are base64.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

FORMAT = "mailhaven-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_BATCH = 1000


class ArchiveError(ValueError):
    """The file is not a backup this code can read."""


@dataclass(frozen=True)
class TableDump:
    name: str
    columns: tuple[str, ...]
    binary: tuple[str, ...]  # columns whose values are base64 in the file
    rows: int

    @property
    def entry(self) -> str:
        return f"tables/{self.name}.jsonl"


@dataclass(frozen=True)
class Manifest:
    revision: str  # the Alembic revision of the schema the rows were read from
    dialect: str
    created_at: str
    mailhaven_version: str
    key_check: str  # a keyed fingerprint of the master key, to refuse a restore with another
    tables: tuple[TableDump, ...]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ArchiveError("not a Mailhaven backup (no mailhaven-backup manifest)")
        if data.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(f"backup format version {data.get('format_version')} is not "
                               f"supported (this Mailhaven reads version {FORMAT_VERSION})")
        tables = tuple(TableDump(t["name"], tuple(t["columns"]), tuple(t["binary"]), t["rows"])
                       for t in data["tables"])
        return cls(**{**data, "tables": tables})


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class ArchiveWriter:
    """Writes to a temporary file beside `path` and moves it into place only when complete,
    so a failed or interrupted backup never leaves a file that looks like one."""

    def __init__(self, path: Path, *, force: bool = False) -> None:
        if path.exists() and not force:
            raise FileExistsError(path)
        self.path = path
        self._tmp = path.with_name(f".{path.name}.partial")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._zip = zipfile.ZipFile(self._file, "w", zipfile.ZIP_DEFLATED, compresslevel=6)
        self._tables: list[TableDump] = []

    def write_table(self, name: str, columns: tuple[str, ...], binary: tuple[str, ...],
                    rows: Iterable[tuple]) -> Iterator[int]:
        """Stream rows into the table's entry; yields the running count every batch."""
        dump = TableDump(name, columns, binary, 0)
        count = 0
        with self._zip.open(dump.entry, "w", force_zip64=True) as out:
            lines: list[str] = []
            for row in rows:
                lines.append(json.dumps([_encode(v) for v in row], separators=(",", ":")))
                count += 1
                if len(lines) >= _BATCH:
                    out.write(("\n".join(lines) + "\n").encode())
                    lines.clear()
                    yield count
            if lines:
                out.write(("\n".join(lines) + "\n").encode())
        self._tables.append(TableDump(name, columns, binary, count))
        yield count

    def finish(self, **manifest: Any) -> Manifest:
        done = Manifest(tables=tuple(self._tables), **manifest)
        self._zip.writestr(MANIFEST, done.to_json())
        self._close()
        os.replace(self._tmp, self.path)
        return done

    def abort(self) -> None:
        # On a full disk closing fails too (the zip's directory, the last buffer): the
        # partial file goes all the same, and the error that stopped the backup is told.
        with contextlib.suppress(OSError, ValueError):
            self._close()
        self._tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        try:
            self._zip.close()
        finally:
            self._file.close()


class ArchiveReader:
    def __init__(self, path: Path) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
            self.manifest = Manifest.from_json(self._zip.read(MANIFEST).decode())
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"not a Mailhaven backup: {exc}") from None

    def table(self, name: str) -> TableDump | None:
        return next((t for t in self.manifest.tables if t.name == name), None)

    def rows(self, dump: TableDump) -> Iterator[list[dict]]:
        """The table's rows as dicts, in batches; bytes decoded back from base64."""
        binary = [dump.columns.index(c) for c in dump.binary]
        with self._zip.open(dump.entry) as raw:
            batch: list[dict] = []
            for line in _lines(raw):
                values = json.loads(line)
                for i in binary:
                    if values[i] is not None:
                        values[i] = base64.b64decode(values[i])
                batch.append(dict(zip(dump.columns, values, strict=True)))
                if len(batch) >= _BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def close(self) -> None:
        self._zip.close()


def _lines(raw: IO[bytes]) -> Iterator[bytes]:
    for line in raw:
        if line.strip():
            yield line
