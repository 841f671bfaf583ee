"""Master-key rotation (SPEC N2): every wrapped data key and sealed secret moves to a new KEK.

Crash-safe by its order: (1) the key file gains a new KEK and keeps the old one; (2) rows
are re-wrapped in batches, one transaction each, every blob naming its KEK's version;
(3) only after a whole pass finds no row left under an old KEK does the file drop it. A
crash anywhere leaves every row readable with the file as it is then, and running the
rotation again picks up at (2). Only wrapped keys change: nothing sealed under a data key
is re-encrypted, and the blind-index key is not rotated (it keys the index, it wraps
nothing; changing it would re-index every subject).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Column, MetaData, Table, bindparam, func, select, update

from mailhaven.storage.db import Database
from mailhaven.vault.keyring import Keyring, write_keyring
from mailhaven.vault.service import Vault

BATCH = 500
MAX_PASSES = 5

# (pass number, column, rows scanned in a batch): for a progress display
Progress = Callable[[int, "WrappedColumn", int], None]


class RotationError(Exception):
    """The rotation cannot finish safely; the key file keeps every KEK it has."""


@dataclass(frozen=True)
class WrappedColumn:
    """A column whose values are wrapped by the master key, and the label (AES-GCM
    associated data) each row's value is wrapped under, as a template over its columns."""

    table: Table
    column: Column
    label: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    def label_of(self, row: dict) -> str:
        return self.label.format(**row)

    def fields(self) -> list[str]:
        named = [f for _, f, _, _ in string.Formatter().parse(self.label) if f]
        [key] = self.table.primary_key.columns
        return list(dict.fromkeys([key.name, self.column.name, *named]))


@dataclass
class Pass:
    scanned: int = 0
    rewrapped: int = 0


def wrapped_columns(metadata: MetaData) -> list[WrappedColumn]:
    """Every column that declares `info["master_key_label"]`, in a stable order."""
    return [WrappedColumn(table, col, col.info["master_key_label"])
            for table in sorted(metadata.tables.values(), key=lambda t: t.name)
            for col in table.columns if "master_key_label" in col.info]


def begin(key_file: Path) -> Keyring:
    """Add a new KEK to the key file as the current one, keeping the old ones; when a
    rotation is already under way (the file holds several), carry on with it."""
    keyring = Keyring.from_json(key_file.read_text())
    if not keyring.rotating:
        keyring = keyring.with_new_kek()
        write_keyring(key_file, keyring)
    return keyring


def count(db: Database, columns: list[WrappedColumn]) -> dict[str, int]:
    with db.sessions() as session:
        return {c.name: session.scalar(select(func.count()).select_from(c.table)
                                       .where(c.column.is_not(None))) or 0 for c in columns}


def rewrap(db: Database, vault: Vault, columns: list[WrappedColumn], *, batch: int = BATCH,
           limit: int | None = None, progress: Callable[[WrappedColumn, int], None] | None
           = None) -> Pass:
    """One pass over every wrapped column: rows not under the current KEK are re-wrapped
    (at most `limit` of them). A row changed meanwhile is left for the next pass."""
    done = Pass()
    for wrapped in columns:
        table, col = wrapped.table, wrapped.column
        [key] = table.primary_key.columns
        fields = [table.c[name] for name in wrapped.fields()]
        statement = (update(table).where(key == bindparam("b_key"), col == bindparam("b_old"))
                     .values({col.name: bindparam("b_new")}))
        last = None
        while limit is None or done.rewrapped < limit:
            with db.transaction() as session:
                # b"": a destroyed key (vault DESTROYED), nothing to re-wrap
                query = (select(*fields).where(col.is_not(None), col != b"")
                         .order_by(key).limit(batch))
                if last is not None:
                    query = query.where(key > last)
                rows = [dict(r._mapping) for r in session.execute(query)]
                changes: list[dict[str, Any]] = []
                for row in rows:
                    if limit is not None and done.rewrapped + len(changes) >= limit:
                        break
                    last = row[key.name]
                    done.scanned += 1
                    try:
                        new = vault.rewrap(wrapped.label_of(row), row[col.name])
                    except InvalidTag:
                        raise RotationError(f"{wrapped.name}: row {last} opens under no KEK "
                                            "of the key file") from None
                    if new is not None:
                        changes.append({"b_key": last, "b_old": row[col.name], "b_new": new})
                if changes:
                    session.execute(statement, changes)
                done.rewrapped += len(changes)
            if progress is not None and rows:
                progress(wrapped, len(rows))
            if len(rows) < batch:
                break
    return done


def finish(key_file: Path, vault: Vault) -> Keyring:
    """Drop the old KEKs from the key file: call only after a pass re-wrapped nothing."""
    keyring = Keyring.from_json(key_file.read_text())
    if keyring.rotating:
        keyring = keyring.without_old_keks()
        write_keyring(key_file, keyring)
    vault.reload()
    return keyring


def rotate(db: Database, vault: Vault, key_file: Path, columns: list[WrappedColumn], *,
           batch: int = BATCH, progress: Progress | None = None) -> Pass:
    """Begin (or resume) a rotation and take it to the end; the rows re-wrapped in all."""
    begin(key_file)
    vault.reload()
    total = Pass()
    for number in range(1, MAX_PASSES + 1):
        def report(wrapped: WrappedColumn, rows: int, number: int = number) -> None:
            if progress is not None:
                progress(number, wrapped, rows)

        done = rewrap(db, vault, columns, batch=batch, progress=report)
        total.scanned += done.scanned
        total.rewrapped += done.rewrapped
        if done.rewrapped == 0:
            finish(key_file, vault)
            return total
    raise RotationError(f"rows under an old KEK still appear after {MAX_PASSES} passes: a "
                        "process that cannot see this key file is writing them")
