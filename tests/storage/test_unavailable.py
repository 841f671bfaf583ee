"""Which database errors mean "not now" (answered 503, retried) and which mean a bug (500):
on real SQLite files, a real PostgreSQL nobody listens on and real PostgreSQL errors; and a
queue row failing for its own reason does not hold up the rest of its batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from mailhaven.inbound import service as intake
from mailhaven.inbound.auth import Verdicts
from mailhaven.inbound.models import PROCESSED, InboundMessage
from mailhaven.inbound.processor import InboundProcessor
from mailhaven.services import Services
from mailhaven.storage.db import is_unavailable
from mailhaven.storage.leases import Lease
from tests.support import free_port


def _raised(engine_url: str, *sqls: str, **connect_args: object) -> DBAPIError:
    engine = create_engine(engine_url, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            for sql in sqls:
                conn.execute(text(sql))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no error")


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def test_a_locked_sqlite_file_is_unavailable_and_a_missing_table_is_not(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write
    try:
        locked = _raised(f"sqlite:///{path}", "INSERT INTO t VALUES (1)", timeout=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in str(locked.orig) and is_unavailable(locked)
    missing = _raised(f"sqlite:///{path}", "SELECT * FROM no_such_table")
    assert isinstance(missing, OperationalError) and not is_unavailable(missing)


def test_a_postgresql_nobody_listens_on_is_unavailable() -> None:
    refused = _raised(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", "SELECT 1",
                      connect_timeout=2)
    assert is_unavailable(refused)


def test_other_errors_are_not_outages() -> None:
    assert not is_unavailable(ValueError("bad input"))
    try:
        raise KeyError("x") from sqlite3.IntegrityError("UNIQUE constraint failed")
    except KeyError as chained:
        assert not is_unavailable(chained)


def test_on_postgresql_the_statement_s_own_errors_are_not_outages_the_connection_s_are(
        pg_database: str) -> None:
    """A statement or lock timeout (57014, 55P03) or a program limit (54000) comes from what
    was asked: retried as an outage, it would fail again for ever. A backend terminated
    under the statement (57P01) or a server refusing the connection is an outage."""
    timed_out = _raised(pg_database, "SET LOCAL statement_timeout = '1ms'",
                        "SELECT pg_sleep(5)")
    assert _sqlstate(timed_out) == "57014" and not is_unavailable(timed_out)
    with psycopg.connect(pg_database.replace("+psycopg", "")) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(7)")
        no_lock = _raised(pg_database, "SET LOCAL lock_timeout = '1ms'",
                          "SELECT pg_advisory_xact_lock(7)")
    assert _sqlstate(no_lock) == "55P03" and not is_unavailable(no_lock)
    too_big = _raised(pg_database, "CREATE TEMP TABLE t (x text)", "CREATE INDEX ON t (x)",
                      "INSERT INTO t SELECT string_agg(md5(random()::text), '') "
                      "FROM generate_series(1, 300)")  # an index entry past btree's limit
    assert _sqlstate(too_big) == "54000" and not is_unavailable(too_big)
    terminated = _raised(pg_database, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert _sqlstate(terminated) == "57P01" and is_unavailable(terminated)


@pytest.mark.postgres_only
def test_an_inbound_row_failing_for_its_own_reason_is_retried_and_the_rest_are_processed(
        services: Services, domain: str, pg_database: str) -> None:
    """A lock timeout on one row is that row's failed attempt (retried on its backoff, failed
    for good after the last), not an outage that stops the batch at it."""
    raw = b"From: Ann <ann@sender.test>\r\nSubject: Hi\r\n\r\nHello\r\n"
    with services.db.transaction() as session:
        receiver = intake.receiver(session, domain, require_verified=False)
        assert receiver is not None
        intake.store(session, services.vault, intake.Received(
            receiver, [f"a@{domain}", f"b@{domain}", f"c@{domain}"], "ann@sender.test", raw,
            intake.Head.of(raw), Verdicts()), services.clock.now())
    admin = psycopg.connect(pg_database.replace("+psycopg", ""), autocommit=True)
    name = admin.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    holder = psycopg.connect(pg_database.replace("+psycopg", ""))
    stuck: list[int] = []

    class FirstRowLocked(InboundProcessor):
        def claim(self) -> tuple[Lease, list[int]]:
            claimed = super().claim()
            # Another transaction keeps the first row: the processor's FOR UPDATE of it
            # waits past lock_timeout; its failed attempt's UPDATE (FOR NO KEY UPDATE) does not.
            stuck.append(claimed[1][0])
            holder.execute("SELECT 1 FROM inbound_messages WHERE id = %s FOR KEY SHARE",
                           [stuck[0]])
            return claimed

    admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = \'500ms\'')
    try:
        services.db.dispose()  # new connections take it
        assert FirstRowLocked(services).process_due() == 3
    finally:
        admin.execute(f'ALTER DATABASE "{name}" RESET lock_timeout')
        holder.close()
        admin.close()
        services.db.dispose()
    with services.db.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(InboundMessage))}
    first = rows.pop(stuck[0])
    assert (first.status, first.attempts) == ("waiting", 1)
    assert first.last_error is not None and first.last_error.startswith("OperationalError")
    assert [(r.status, r.attempts) for r in rows.values()] == [(PROCESSED, 1)] * 2
