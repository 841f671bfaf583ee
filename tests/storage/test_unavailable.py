"""Which database errors mean "not now" (answered 503, retried) and which mean a bug (500):
on real SQLite files and a real PostgreSQL nobody listens on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from mailhaven.storage.db import is_unavailable
from tests.support import free_port


def _raised(engine_url: str, sql: str, **connect_args: object) -> DBAPIError:
    engine = create_engine(engine_url, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no error")


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
