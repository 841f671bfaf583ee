"""Mail queued, heard by the delivery workers of every process sharing the database.

A process's `Doorbell` wakes only its own runners. The transaction that queues mail also
`announce`s it to the others: on PostgreSQL a NOTIFY, delivered at commit; on SQLite (one
machine) the modification time of a file beside the database, touched after the commit.
Each process that runs a delivery worker keeps a `Listener` (LISTEN on a connection of its
own, or the file's time read every `POLL_SECONDS`) that rings its doorbell when another
process queued mail, so a `mailhaven worker` beside `serve` takes its share at once instead
of at its next poll. A notice missed (the LISTEN connection away, a file that can't be
touched) only delays: the workers still poll, as they did before this existed. A process
does not hear its own notices: it rings its own doorbell after the commit.

A process whose only work is delivery (`mailhaven worker`) also says, every
`HEARTBEAT_SECONDS`, that it is there (a NOTIFY; SQLite: a second file touched), so that
`serve` can leave the copies its API queues to it (`Listener.workers_alive`) and keep its
own core for the API; when the heartbeats stop, serve's worker takes its doorbell again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import event
from sqlalchemy.orm import Session

from mailhaven.storage.db import Database
from mailhaven.storage.hearing import Hearing

log = logging.getLogger("mailhaven.storage")

CHANNEL = "mailhaven_queued"
POLL_SECONDS = 0.02  # SQLite: how often the file's time is read (a stat, no database work)
LISTEN_SECONDS = 0.5  # PostgreSQL: how often the listener looks whether it must stop
LIVENESS_SECONDS = 30.0  # PostgreSQL: a SELECT 1 this often on the LISTEN connection
HEARTBEAT_SECONDS = 1.0  # how often a worker process says it is there
ALIVE_SECONDS = 3.0  # a worker heard from within this long is taken to be working
_ANNOUNCED = "mailhaven.queued"  # session.info: the transaction already announced
_touched: dict[str, int] = {}  # SQLite: bell file -> the time this process last gave it


def bell_path(database: str | None) -> str | None:
    """The file a SQLite database's bell rings on; None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-queued"


def workers_path(database: str | None) -> str | None:
    """The file SQLite's worker processes touch while they run."""
    bell = bell_path(database)
    return None if bell is None else f"{bell}-workers"


def announce(session: Session) -> None:
    """In a transaction that queues mail: the delivery workers of the other processes hear
    of it at its commit (once a transaction, however often it is called)."""
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_ANNOUNCED) is transaction:
        return
    session.info[_ANNOUNCED] = transaction
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        path = bell_path(bind.engine.url.database)
        if path is not None:
            event.listen(session, "after_commit", lambda _s: ring_file(path), once=True)
    else:
        # Raw driver SQL: no statement to build, cache-key or compile on the hot path. The
        # payload names this process, whose own listener leaves it out.
        session.connection().exec_driver_sql(f"NOTIFY {CHANNEL}, '{os.getpid()}'")


def ring_file(path: str) -> None:
    """Touch SQLite's bell file (after a commit); never raises: a missed ring only delays."""
    try:
        try:
            os.utime(path)
        except FileNotFoundError:
            Path(path).touch()
        _touched[path] = os.stat(path).st_mtime_ns
    except OSError as exc:
        log.warning("queued: could not ring %s (%s)", path, type(exc).__name__)


class Listener(Hearing):
    """A thread that calls `ring` when another process queued mail in `db`."""

    name = "queued"
    channel = CHANNEL
    outage_level = logging.DEBUG  # mail still flows: the poll finds it

    def __init__(self, db: Database, ring: Callable[[], None], *,
                 poll: float = POLL_SECONDS, worker: bool = False) -> None:
        """`worker`: this process only delivers, and says so (heartbeats)."""
        super().__init__(db, poll, LIVENESS_SECONDS)
        self.ring, self.worker = ring, worker
        self._beat = 0.0  # monotonic: this worker's last heartbeat
        self._worker_heard: float | None = None  # monotonic: another worker's last heartbeat

    def workers_alive(self) -> bool:
        """Whether a worker process (not this one) said lately that it is there."""
        heard = self._worker_heard
        return heard is not None and time.monotonic() - heard < ALIVE_SECONDS

    def _ring(self) -> None:
        try:
            self.ring()
        except Exception:  # the loop it wakes closed: nothing left to wake
            log.debug("queued: ringing failed", exc_info=True)

    def _poll(self) -> None:
        path = bell_path(self.db.engine.url.database)
        if path is None:
            self.listening.set()
            return
        workers = workers_path(self.db.engine.url.database)
        assert workers is not None
        seen: int | None = None
        beat = 0.0
        while not self._stop.is_set():
            try:
                mtime: int | None = os.stat(path).st_mtime_ns
            except OSError:
                mtime = None
            if mtime != seen:
                if seen is not None and mtime is not None and mtime != _touched.get(path):
                    self._ring()
                seen = mtime
            now = time.monotonic()
            if self.worker:
                if now - beat >= HEARTBEAT_SECONDS:
                    ring_file(workers)
                    beat = now
            else:
                try:
                    age = time.time() - os.stat(workers).st_mtime
                except OSError:
                    age = None
                if age is not None and age < ALIVE_SECONDS:
                    self._worker_heard = now - max(age, 0.0)
            self.listening.set()
            self._stop.wait(self.poll)

    def _listening(self) -> None:
        self._ring()  # whatever was queued before this LISTEN went unheard
        self._beat = 0.0

    def _hear(self, conn: psycopg.Connection) -> None:
        own = str(os.getpid())
        if self.worker and time.monotonic() - self._beat >= HEARTBEAT_SECONDS:
            conn.execute(f"NOTIFY {CHANNEL}, 'worker {own}'")
            self._beat = time.monotonic()
        for note in conn.notifies(timeout=min(LISTEN_SECONDS, HEARTBEAT_SECONDS / 2)):
            if note.payload.startswith("worker "):
                if note.payload != f"worker {own}":
                    self._worker_heard = time.monotonic()
            elif note.payload != own:
                self._ring()  # the doorbell keeps one ring however many
