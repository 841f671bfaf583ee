"""Periodic jobs taken in turn by the processes sharing a database, not run by each.

Each job's runs are recorded in `job_runs`: a run is recorded as started before it starts,
so neither a restarted process nor a second one runs the job again before its interval has
passed. A run holds the job until it finishes, or until `longest` seconds have passed (its
process is then taken to have died); on PostgreSQL an advisory lock keyed by the job's name,
held for the whole run, also keeps out a second run when one outlasts that. A run cut short
by its process stopping gives its turn back: the job is due again at once. A run that fails
is tried again after a pause, not at every process's next look.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, String, text, update
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.db import Database, affected, insert_for
from mailhaven.storage.inventory import TECHNICAL, column


class JobRun(Base):
    """When each periodic job (the retention purge, the domain checks) last ran, for every
    process that shares the database."""

    __tablename__ = "job_runs"

    name: Mapped[str] = column(String(64), primary_key=True, data=TECHNICAL)
    last_started_at: Mapped[float | None] = column(Float, nullable=True, data=TECHNICAL)
    last_finished_at: Mapped[float | None] = column(Float, nullable=True, data=TECHNICAL)
    # while a run holds the job: the time after which it is taken to have died
    running_until: Mapped[float | None] = column(Float, nullable=True, data=TECHNICAL)


@dataclass(frozen=True)
class Turn:
    """A run of a job that this process started, recorded; `finish` or `give_back` ends it."""

    db: Database
    name: str
    started_at: float
    previous_start: float | None
    lock: Connection | None  # PostgreSQL: the connection holding the job's advisory lock

    def finish(self, now: float) -> None:
        self._end(last_finished_at=now, running_until=None)

    def give_back(self, *, retry_at: float | None = None) -> None:
        """The run did not finish: the job is due again as if it had not started — at once,
        or (after a failure) from `retry_at`."""
        self._end(last_started_at=self.previous_start, running_until=retry_at)

    def _end(self, **values: Any) -> None:
        try:
            with self.db.transaction() as session:
                session.execute(update(JobRun).where(JobRun.name == self.name,
                                                     JobRun.last_started_at == self.started_at)
                                .values(**values))
        finally:
            if self.lock is not None:
                _unlock(self.lock, self.name)


def take_turn(db: Database, name: str, *, every: float, now: float,
              longest: float | None = None) -> Turn | None:
    """Start a run of the job `name` if none started in the last `every` seconds and no other
    process runs it, recorded before this returns; None if it is not this process's turn.
    The run holds the job for `longest` seconds at most (by default `every`)."""
    with db.sessions() as session:  # the common case, not due, without a write or a lock
        last = session.get(JobRun, name)
        seen = (None, None) if last is None else (last.last_started_at, last.running_until)
    if not _free(*seen, every=every, now=now):
        return None
    lock = None
    if not db.is_sqlite:
        lock = _lock(db, name)
        if lock is None:  # another process is running it
            return None
    try:
        with db.transaction() as session:
            if last is None:
                session.execute(insert_for(session, JobRun).values(name=name)
                                .on_conflict_do_nothing())
            # Compare and set: only if nobody started a run since it was read. (On SQLite
            # this write transaction holds the only write lock; on PostgreSQL a concurrent
            # UPDATE waits for this one and then finds the row changed.)
            taken = affected(session.execute(
                update(JobRun).where(JobRun.name == name,
                                     JobRun.last_started_at.is_not_distinct_from(seen[0]),
                                     JobRun.running_until.is_not_distinct_from(seen[1]))
                .values(last_started_at=now, running_until=now + (longest or every))
            )) == 1
    except BaseException:
        if lock is not None:
            _unlock(lock, name)
        raise
    if not taken:
        if lock is not None:
            _unlock(lock, name)
        return None
    return Turn(db, name, now, seen[0], lock)


def last_run(db: Database, name: str) -> JobRun | None:
    with db.sessions() as session:
        return session.get(JobRun, name)


def _free(started: float | None, running_until: float | None, *, every: float,
          now: float) -> bool:
    """Due (never run, or started `every` seconds ago or more) and not running."""
    due = started is None or started + every <= now
    return due and (running_until is None or running_until <= now)


def _key(name: str) -> int:
    """The job's advisory lock: a signed 64-bit number of its own."""
    digest = hashlib.blake2b(f"mailhaven job {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock(db: Database, name: str) -> Connection | None:
    """A connection holding the job's advisory lock (until `_unlock`), or None if another
    process holds it. The lock belongs to the database session, not to a transaction: no
    transaction stays open while the job runs, and if the process dies the lock goes."""
    conn = db.engine.connect()
    try:
        taken = conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": _key(name)})
        conn.commit()
    except BaseException:
        conn.close()
        raise
    if not taken:
        conn.close()
        return None
    return conn


def _unlock(conn: Connection, name: str) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _key(name)})
        conn.commit()
    except Exception:  # a connection that may still hold the lock must not go back to the pool
        conn.invalidate()
        raise
    finally:
        conn.close()
