"""What an attacker with database access (but not the key file) does: triggers off, raw SQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

from mailhaven.services import Services


@contextmanager
def triggers_off(services: Services) -> Iterator[Connection]:
    """A connection on which audit_log's append-only triggers are gone, back afterwards."""
    with services.db.engine.begin() as conn:
        if services.db.is_sqlite:
            saved = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = "
                                      "'trigger' AND tbl_name = 'audit_log'")).all()
            for name, _ in saved:
                conn.execute(text(f"DROP TRIGGER {name}"))
            yield conn
            for _, sql in saved:
                conn.execute(text(sql))
        else:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


def edit_details(services: Services, row: int) -> None:
    with triggers_off(services) as conn:
        conn.execute(text("UPDATE audit_log SET details = :d WHERE id = :i"),
                     {"d": '{"step":99}', "i": row})


def delete_row(services: Services, row: int) -> None:
    with triggers_off(services) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": row})


def swap_rows(services: Services, a: int, b: int) -> None:
    with triggers_off(services) as conn:
        for old, new in ((a, -1), (b, a), (-1, b)):
            conn.execute(text("UPDATE audit_log SET id = :new WHERE id = :old"),
                         {"old": old, "new": new})
