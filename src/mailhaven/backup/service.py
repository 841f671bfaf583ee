"""Backup and restore (SPEC N9): a consistent logical snapshot of every table, and a restore
that erases again everyone the erasure ledger names, so an erased subject never comes back."""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, LargeBinary, MetaData, Table, func, select, text
from sqlalchemy.exc import NoSuchTableError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from mailhaven import __version__
from mailhaven.audit import service as audit
from mailhaven.audit.models import AuditEntry
from mailhaven.backup.archive import ArchiveError, ArchiveReader, ArchiveWriter, Manifest
from mailhaven.clock import SYSTEM_CLOCK, Clock, iso8601
from mailhaven.delivery.models import Delivery
from mailhaven.domains.models import Domain
from mailhaven.errors import MailhavenError
from mailhaven.events.models import Event
from mailhaven.models import metadata
from mailhaven.privacy.erasure import (
    complete_ledger_file,
    ledger_entries,
    ledger_table,
    pending,
    reapply,
)
from mailhaven.storage.db import MIGRATIONS, Database, empty_tables, restart_sequences
from mailhaven.vault import Keyring, Vault
from mailhaven.vault.models import DESTROYED, VaultKey

Progress = Callable[[str, int, int], None]  # table, rows done, rows in all


class BackupError(MailhavenError):
    """A backup or restore refused, with a message for the operator."""


@dataclass(frozen=True)
class Restored:
    """What a restore loaded and what re-applying the erasure ledger took away again."""

    tables: dict[str, int]
    erasures: int  # ledger entries re-applied
    keys_destroyed: int
    events_removed: int
    queue_removed: int
    domains_removed: int
    # erasures whose restored rows (unreadable: their keys are destroyed) are left to the
    # background job, as after the erasure itself; the counts above are without them
    deletion_pending: int = 0


def _quiet(table: str, done: int, total: int) -> None:
    pass


def key_check(keyring: Keyring) -> str:
    """A fingerprint of the master key that reveals nothing about it (HMAC under the key):
    a restore under another key would leave every sealed value unreadable."""
    digest = hmac.new(keyring.kek + keyring.index_key, b"mailhaven backup key check",
                      hashlib.sha256)
    return digest.hexdigest()[:16]


def head_revision() -> tuple[str, set[str]]:
    """The code's newest schema revision, and every revision it knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    return script.get_current_head() or "", {r.revision for r in script.walk_revisions()}


# -- create ------------------------------------------------------------------------------

def _schema(conn: Connection) -> tuple[str, list[Table]]:
    """The database's own revision and our tables in it (reflected, so a backup is faithful
    to the schema it reads even when the code is newer), in foreign-key order."""
    try:
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (OperationalError, ProgrammingError, NoSuchTableError):
        revisions = []
    if len(revisions) != 1:
        raise BackupError("The database has no Mailhaven schema: nothing to back up")
    head, known = head_revision()
    if revisions[0] not in known:
        raise BackupError(f"The database's schema revision {revisions[0]} is newer than this "
                          f"Mailhaven ({head}): back it up with the release that runs it")
    reflected = MetaData()
    reflected.reflect(conn)
    return revisions[0], [t for t in reflected.sorted_tables if t.name in metadata.tables]


def create_backup(db: Database, keyring: Keyring, path: Path, *, force: bool = False,
                  progress: Progress = _quiet, clock: Clock = SYSTEM_CLOCK) -> Manifest:
    """Write every row to a new archive at `path`; the master key is never in it."""
    try:
        writer = ArchiveWriter(path, force=force)
    except FileExistsError:
        raise BackupError(f"{path} exists; pass --force to overwrite it") from None
    try:
        with db.snapshot() as session:
            conn = session.connection()
            revision, tables = _schema(conn)
            for table in tables:
                total = conn.scalar(select(func.count()).select_from(table)) or 0
                progress(table.name, 0, total)
                rows = conn.execution_options(yield_per=1000).execute(
                    select(table).order_by(*table.primary_key.columns))
                columns = tuple(c.name for c in table.columns)
                binary = tuple(c.name for c in table.columns
                               if isinstance(c.type, LargeBinary))
                for done in writer.write_table(table.name, columns, binary, rows):
                    progress(table.name, done, total)
        return writer.finish(revision=revision, dialect=db.engine.dialect.name,
                             created_at=iso8601(clock.now(), timespec="seconds"),
                             mailhaven_version=__version__, key_check=key_check(keyring))
    except BaseException:
        writer.abort()
        raise


# -- restore -----------------------------------------------------------------------------

def check_restorable(manifest: Manifest, keyring: Keyring, *,
                     key_setting: str = "MAILHAVEN_MASTER_KEY_FILE",
                     others: Mapping[str, Keyring] | None = None) -> None:
    """Refuse, before anything is touched, a backup this code or this key can't restore.
    Under another key, name the database (of `others`, by name) whose key it is, or else
    the setting (`key_setting`) that points at this database's key file."""
    head, known = head_revision()
    if manifest.revision not in known:
        raise BackupError(
            f"The backup's schema revision {manifest.revision} is newer than this Mailhaven "
            f"({head}): restore it with the Mailhaven release that wrote it "
            f"({manifest.mailhaven_version}) or a newer one")
    if manifest.revision != head:
        raise BackupError(
            f"The backup's schema revision {manifest.revision} is older than this Mailhaven "
            f"({head}): restore it with the release that wrote it "
            f"({manifest.mailhaven_version}), then upgrade (migrations run on start)")
    if manifest.key_check != key_check(keyring):
        owner = next((name for name, other in (others or {}).items()
                      if key_check(other) == manifest.key_check), None)
        if owner is not None:
            where = "the main database" if owner == "main" else f"region {owner}"
            raise BackupError(
                f"The backup belongs to {where}, not to this database (it was sealed under "
                f"that one's master key): restore it with --region {owner}")
        raise BackupError(
            "The backup was sealed under another master key than this database's: it "
            "belongs to another region, database or installation; restore it there, or set "
            f"{key_setting} to the key file of the one that wrote it")
    tables = {t.name: t for t in metadata.sorted_tables}
    for dump in manifest.tables:
        table = tables.get(dump.name)
        if table is None or not set(dump.columns) <= set(table.columns.keys()):
            raise ArchiveError(f"the backup's table {dump.name} does not match the schema")


def restore_backup(db: Database, keyring: Keyring, data_dir: Path, path: Path, *,
                   replace: bool = False, progress: Progress = _quiet,
                   clock: Clock = SYSTEM_CLOCK,
                   key_setting: str = "MAILHAVEN_MASTER_KEY_FILE",
                   others: Mapping[str, Keyring] | None = None) -> Restored:
    """Load the archive into the (migrated) database in one transaction, after reading the
    erasure ledger as it stands now, and re-apply that ledger before committing."""
    reader = ArchiveReader(path)
    try:
        check_restorable(reader.manifest, keyring, key_setting=key_setting, others=others)
        vault = Vault(keyring)
        with db.transaction() as session:
            # The audit log is append-only and records the restore itself: an existing one
            # is kept (the backup's rows are its own past); an empty one takes the backup's.
            kept = {"audit_log"} if session.execute(
                select(1).select_from(AuditEntry).limit(1)).first() else set()
            tables = [t for t in metadata.sorted_tables if t.name not in kept]
            entries = ledger_entries(session, data_dir)  # before anything is wiped
            session.expunge_all()  # the ledger rows about to be replaced by the backup's
            if not _is_empty(session, tables):
                if not replace:
                    raise BackupError("The database is not empty; pass --replace to wipe it "
                                      "and restore the backup in its place")
                empty_tables(session, tables)
            loaded = {t.name: _load(session, reader, t, progress) for t in tables}
            restart_sequences(session, tables)
            before = _tally(session)
            reapply(session, vault, entries)
            after = _tally(session)
            audit.append(session, vault, actor="cli", action="backup.restored",
                         details={"rows": sum(loaded.values()), "erasures_reapplied":
                                  len(entries)}, now=clock.now())
            ledger = ledger_table(session)
            left = len(pending(session))
        complete_ledger_file(data_dir, ledger)
    except (zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"the backup is damaged: {exc}") from None
    finally:
        reader.close()
    keys, events, queue, domains = (before[i] - after[i] for i in range(4))
    return Restored(loaded, len(entries), keys, events, queue, domains, deletion_pending=left)


def _is_empty(session: Session, tables: list[Table]) -> bool:
    return all(session.execute(select(1).select_from(t).limit(1)).first() is None
               for t in tables)


def _load(session: Session, reader: ArchiveReader, table: Table, progress: Progress) -> int:
    dump = reader.table(table.name)
    if dump is None:  # a table the backup had no rows file for: it stays empty
        return 0
    done = 0
    progress(table.name, 0, dump.rows)
    for batch in reader.rows(dump):
        session.execute(table.insert(), batch)
        done += len(batch)
        progress(table.name, done, dump.rows)
    if done != dump.rows:
        raise ArchiveError(f"the backup is damaged: {table.name} has {done} rows, its "
                           f"manifest says {dump.rows}")
    return done


def _tally(session: Session) -> tuple[int, int, int, int]:
    """Keys (a destroyed one's row, kept until the background job deletes it, is not one),
    events, queue entries, domains."""
    return tuple(session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[return-value]
                 for model, where in ((VaultKey, [VaultKey.wrapped_key != DESTROYED]), (Event, []),
                                      (Delivery, []), (Domain, [])))

