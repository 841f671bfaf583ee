"""Engines for SQLite (embedded, WAL) and PostgreSQL, sessions, and migrations on start."""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, Integer, Table, create_engine, event, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger("mailhaven.storage")
MIGRATIONS = Path(__file__).parent / "migrations"
# SQLite's words for "not now": another writer holds the file past the busy timeout, the
# disk is full or failing, the file can't be opened
_SQLITE_UNAVAILABLE = ("database is locked", "database or disk is full", "disk i/o error",
                       "unable to open database file")
SQLITE_BUSY_SECONDS = 30.0
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_MIGRATION_LOCK = 7_734_201  # PostgreSQL advisory lock id: one migrator at a time
_READ_ONLY = "mailhaven_read_only"


def _configure_sqlite(engine: Engine, busy_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers BEGIN IMMEDIATE: they take the write lock up front and queue on
        # busy_timeout, instead of failing when a read transaction tries to become a write.
        # Readers (the `sessions` factory) take a plain snapshot and never block writers.
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                sa_exc.TimeoutError)
# PostgreSQL's SQLSTATEs for "not now": the connection (class 08), the server shutting down
# or not accepting connections yet (57P01-57P03), out of connections, disk, memory or other
# resources (class 53 but 53400, a configured limit the statement hit), an I/O error on its
# disk (58030). Others an OperationalError carries are the statement's own: a statement or
# lock timeout (57014, 55P03), a program limit (54xxx), a deadlock or a serialization
# failure (40xxx) come from what the request asked, and retrying it as if the database
# were away would never end.
_PG_UNAVAILABLE_CLASSES = ("08",)
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53000", _PG_DISK_FULL, "53200",
                             "53300", "58030"})


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database can't be reached or written just
    now — PostgreSQL down or restarting, the pool exhausted, SQLite locked, a disk full —
    rather than that the request or our code is wrong: the caller answers "try again"."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, DBAPIError) and found.connection_invalidated:
            return True
        orig = found.orig if isinstance(found, DBAPIError) else None
        if isinstance(orig, sqlite3.Error):  # SQLite's: by its words, below
            found = orig
            continue
        sqlstate = getattr(orig if orig is not None else found, "sqlstate", None)
        if sqlstate is not None:  # PostgreSQL said why
            return sqlstate.startswith(_PG_UNAVAILABLE_CLASSES) or sqlstate in _PG_UNAVAILABLE
        if isinstance(found, _UNREACHABLE):  # no answer at all: refused, lost, pool timeout
            return True
        if isinstance(found, sqlite3.OperationalError):
            return str(found).lower().startswith(_SQLITE_UNAVAILABLE)
        if isinstance(found, OSError) and found.errno in _NO_SPACE:  # a file on a full disk
            return True
        found = found.__cause__ or found.__context__
    return False


def is_out_of_space(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the disk is full: SQLite's SQLITE_FULL, a
    file written on a full filesystem (ENOSPC, EDQUOT), PostgreSQL's disk_full (53100).
    An outage like any (`is_unavailable`), but SMTP names it (452 4.3.1) and the CLI says
    what to free."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, OSError) and found.errno in _NO_SPACE:
            return True
        if isinstance(found, sqlite3.OperationalError):
            return str(found).lower().startswith("database or disk is full")
        if getattr(found, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if isinstance(found, DBAPIError) and found.orig is not None and found.orig is not found:
            found = found.orig
            continue
        found = found.__cause__ or found.__context__
    return False


class Outage:
    """The database stopped answering: one log line when an outage starts, one when work is
    done again (with how many requests were refused), not a traceback per request. One per
    process, shared by the API, SMTP submission and the MX."""

    def __init__(self) -> None:
        self.refused_count = 0

    def refused(self, where: str, exc: BaseException) -> bool:
        """Whether `exc` is an outage (then counted, and its start logged once): the caller
        answers "try again later" and logs nothing more."""
        if not is_unavailable(exc):
            return False
        if not self.refused_count:
            log.error(json.dumps({"kind": "outage", "state": "started", "where": where,
                                  "error": type(exc).__name__}))
        self.refused_count += 1
        return True

    def answered(self) -> None:
        if self.refused_count:
            log.warning(json.dumps({"kind": "outage", "state": "ended",
                                    "requests_refused": self.refused_count}))
            self.refused_count = 0


outage = Outage()


def affected(result: object) -> int:
    """Rows an UPDATE or DELETE changed (`Session.execute` is typed to return any Result;
    for these statements it is a CursorResult)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def insert_for(session: Session, model: Any) -> Any:
    """`INSERT` with `ON CONFLICT` support, in the dialect of the session's database."""
    return dialect_insert(session.get_bind().dialect.name, model)


def is_postgresql(session: Session) -> bool:
    """Whether the session's database is PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def one_writer_at_a_time(session: Session, key: int) -> None:
    """Hold a lock named by `key` until this transaction ends, so writers of one kind go one
    at a time: SQLite's writer transaction (BEGIN IMMEDIATE) already does; PostgreSQL takes
    an advisory lock."""
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def empty_tables(session: Session, tables: list[Table]) -> None:
    """Every row of `tables` (in foreign-key order), in this transaction: TRUNCATE on
    PostgreSQL (transactional there), children before parents on SQLite."""
    if is_postgresql(session):
        session.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables)))
        return
    for table in reversed(tables):
        session.execute(table.delete())


def restart_sequences(session: Session, tables: list[Table]) -> None:
    """After rows were loaded with their ids: each integer key's sequence starts past the
    largest one (PostgreSQL; SQLite's rowids need nothing)."""
    if not is_postgresql(session):
        return
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, Integer):
                continue
            sequence = session.scalar(select(func.pg_get_serial_sequence(table.name,
                                                                         column.name)))
            if sequence:
                top = select(func.coalesce(func.max(column), 0)).scalar_subquery()
                session.execute(select(func.setval(sequence, top + 1, False)))


def dialect_insert(dialect: str, model: Any) -> Any:
    """`INSERT` with `ON CONFLICT` support in the named dialect (postgresql or sqlite)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


class Database:
    """One engine; `sessions()` for reading (on SQLite without the write lock),
    `transaction()` for a unit of work that writes."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # How long a writer waits for another process's write lock before the request
            # is answered "try again" (503): `?timeout=` in the URL, else 30 s
            busy_seconds = float(str(parsed.query.get("timeout", SQLITE_BUSY_SECONDS)))
            self.engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": busy_seconds},
                pool_size=8, hide_parameters=True,
            )
            _configure_sqlite(self.engine, busy_seconds)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                                        hide_parameters=True)
        self.sessions = sessionmaker(self.engine.execution_options(**{_READ_ONLY: True}),
                                     expire_on_commit=False)
        self._writers = sessionmaker(self.engine, expire_on_commit=False)

        # SQLite has one writer at a time; threads of this process queue on a lock, which
        # wakes the next writer at once, instead of in SQLite's sleeping busy handler.
        self._write_lock = threading.Lock() if self.is_sqlite else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._write_lock, self._writers() as session, session.begin():
            yield session

    def migrate(self, revision: str = "head", vault: Any = None) -> None:
        """Bring the schema to the newest revision (tests may name an older one); safe when
        several processes start at once. `vault` (a `mailhaven.vault.Vault`: storage sits
        below the vault, hence `Any`) is for revisions that seal what was stored in clear;
        they refuse to run over such rows without it."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.migrating() as conn:
            config.attributes["connection"] = conn
            config.attributes["vault"] = vault
            command.upgrade(config, revision)

    @contextmanager
    def migrating(self) -> Iterator[Connection]:
        """A connection in a transaction for Alembic. On PostgreSQL it holds the migration
        lock. On SQLite foreign keys are off meanwhile (they can only be switched outside
        a transaction): batch mode rebuilds a table by copying it and dropping the old one,
        and with them on, that drop deletes every row referencing it ON DELETE CASCADE.
        After a migration (not on every start: it reads every table) every reference is
        checked before it commits."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None  # checked out, so connected
            if self.is_sqlite:
                raw.cursor().execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    if not self.is_sqlite:
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                     {"k": _MIGRATION_LOCK})
                    before = MigrationContext.configure(conn).get_current_revision()
                    yield conn
                    if self.is_sqlite and (
                            MigrationContext.configure(conn).get_current_revision() != before):
                        dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                        if dangling is not None:
                            raise RuntimeError(f"a migration left a dangling reference: "
                                               f"{tuple(dangling)}")
            finally:
                if self.is_sqlite:
                    raw.cursor().execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read transaction that sees one moment throughout, so counts match rows and
        writers are not blocked: SQLite's read transaction already does; PostgreSQL needs
        REPEATABLE READ."""
        with self.sessions() as session:
            options = {} if self.is_sqlite else {"isolation_level": "REPEATABLE READ"}
            session.connection(execution_options=options)
            yield session

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.engine.dispose()
