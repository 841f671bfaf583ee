"""SQLite's own outages, end to end: another process holding the write lock past the busy
timeout, and a database that can't grow (full). The API answers 503 with Retry-After in
Mailgun's shape (a client retries), stores nothing of the refused request, leaves the file
sound (`PRAGMA integrity_check`), and the same request succeeds once the lock is released
or space returns."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from mailhaven.accounts.service import create_account
from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain
from mailhaven.services import Services
from tests.outage_support import sqlite_integrity, stored
from tests.support import LiveServer

MESSAGE = {"from": "news@mg.acme.test", "to": "ann@example.org", "subject": "Hi",
           "text": "Hello"}
# Another process's write lock held until its stdin closes
HOLD_THE_WRITE_LOCK = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], "
                       "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
                       "print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def sqlite_services(tmp_path: Path, sqlite_schema: Path) -> Iterator[tuple[Services, str]]:
    """Mailhaven on a SQLite file whose writers wait 1 s for a lock (`?timeout=1`), with an
    account (its API key) and a domain."""
    shutil.copyfile(sqlite_schema, tmp_path / "mailhaven.db")
    clock = FrozenClock()
    services = Services.start(Settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'mailhaven.db'}?timeout=1",
        hostname="mx.mailhaven.test", require_verified_domains=False), clock, migrate=False)
    try:
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name="Acme",
                                    email="ops@acme.test", clock=clock)
            create_domain(session, services.vault, issued.account_id,
                          {"name": "mg.acme.test"}, clock)
        yield services, issued.api_key
    finally:
        services.close()


def test_a_write_lock_held_past_the_busy_timeout_is_answered_503_then_the_request_succeeds(
        sqlite_services: tuple[Services, str], tmp_path: Path) -> None:
    services, api_key = sqlite_services
    with LiveServer(services) as live, live.client(api_key) as api:
        before = stored(services)
        with subprocess.Popen([sys.executable, "-c", HOLD_THE_WRITE_LOCK,
                               str(tmp_path / "mailhaven.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
            assert holder.stdout is not None and holder.stdin is not None
            try:
                assert holder.stdout.readline() == b"held\n"
                refused = api.post("/v3/mg.acme.test/messages", data=MESSAGE)
                assert refused.status_code == 503, refused.text
                assert refused.headers["Retry-After"] == "5"
                assert set(refused.json()) == {"message"}
                assert "retry" in refused.json()["message"]
                assert stored(services) == before  # nothing half-stored
            finally:
                holder.stdin.close()  # the lock is released
                holder.wait(timeout=30)
        accepted = api.post("/v3/mg.acme.test/messages", data=MESSAGE)
        assert accepted.status_code == 200, accepted.text
        assert stored(services) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert sqlite_integrity(tmp_path / "mailhaven.db") == "ok"


def test_a_full_database_is_answered_503_left_sound_and_works_again_when_space_returns(
        sqlite_services: tuple[Services, str], tmp_path: Path) -> None:
    """Full as SQLite says it (SQLITE_FULL): here its pages capped at what it has now."""
    services, api_key = sqlite_services
    engine = services.db.engine

    def no_more_pages(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cur = dbapi_conn.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    large = {**MESSAGE, "text": "A long letter. " * 40_000}  # more pages than are free
    with LiveServer(services) as live, live.client(api_key) as api:
        before = stored(services)
        event.listen(engine, "connect", no_more_pages)
        engine.dispose()  # every connection from now on has the cap
        try:
            refused = api.post("/v3/mg.acme.test/messages", data=large)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            assert set(refused.json()) == {"message"}
            assert api.get("/v3/mg.acme.test/events").status_code == 200  # reads still work
        finally:
            event.remove(engine, "connect", no_more_pages)
            engine.dispose()  # space is back
        assert stored(services) == before
        assert sqlite_integrity(tmp_path / "mailhaven.db") == "ok"
        accepted = api.post("/v3/mg.acme.test/messages", data=large)
        assert accepted.status_code == 200, accepted.text
        assert stored(services) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert sqlite_integrity(tmp_path / "mailhaven.db") == "ok"
