"""Revocations heard by every process sharing a database, so no cache outlives them.

Processes keep what they checked a moment ago in memory (the API keys they accepted, the
domains the MX receives for). When a key, an account or a domain ends, `announce` tells
every process, in the transaction that ends it: on PostgreSQL a NOTIFY naming what ended,
delivered at commit; on SQLite (one machine) a counter bumped. A process's `Watcher` hears
them — LISTEN on a connection of its own, or the counter read twice a second — and every
subscribed cache drops what was named, or everything where a notice may have been missed
(the LISTEN connection came back after an outage; SQLite's counter names nothing). The
announcing process drops its own entries at commit, without waiting for the watcher.

A LISTEN connection that dies quietly is found (`storage.hearing`: keepalives, and a
`SELECT 1` every `LIVENESS_SECONDS` that must be answered within as long); the watcher
connects again and clears.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import psycopg
from sqlalchemy import Integer, event, select, text, update
from sqlalchemy.orm import Mapped, Session

from mailhaven.storage.base import Base
from mailhaven.storage.db import Database, affected
from mailhaven.storage.hearing import Hearing
from mailhaven.storage.inventory import TECHNICAL, column

log = logging.getLogger("mailhaven.revocations")

CHANNEL = "mailhaven_revocations"
POLL_SECONDS = 0.5  # SQLite: how often the counter is read; PostgreSQL: how often stop is seen
LIVENESS_SECONDS = 30.0  # PostgreSQL: a SELECT 1 this often, which must be answered as soon
# NOTIFY refuses a payload of 8000 bytes or more: longer lists go in several notices
PAYLOAD_BYTES = 7900

Kind = Literal["key", "account", "domain"]


class RevocationCounter(Base):
    """SQLite's revocations: one row counting them, read by every process on the machine."""

    __tablename__ = "revocations"

    id: Mapped[int] = column(Integer, primary_key=True, data=TECHNICAL)
    version: Mapped[int] = column(Integer, default=0, data=TECHNICAL)


@dataclass(frozen=True)
class Revoked:
    """What ended: an API key (by its digest), an account (by id), a domain (by name)."""

    kind: Kind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, payload: str) -> list[Revoked]:
        found = []
        for line in payload.splitlines():
            kind, _, value = line.partition(":")
            if kind in ("key", "account", "domain") and value:
                found.append(cls(kind, value))  # type: ignore[arg-type]
        return found


class Forgets(Protocol):
    """A cache that can hold something revoked: it drops what is named, or (None) all."""

    def drop(self, revoked: Collection[Revoked] | None) -> None: ...


_caches: weakref.WeakSet[Forgets] = weakref.WeakSet()


def subscribe(cache: Forgets) -> None:
    """Have `cache` drop what is revoked from now on (held weakly)."""
    _caches.add(cache)


def heard(revoked: Collection[Revoked] | None) -> None:
    """Every subscribed cache drops `revoked`, or everything (None)."""
    for cache in list(_caches):
        try:
            cache.drop(revoked)
        except Exception:  # one cache's bug must not keep the others holding revoked keys
            log.exception("a cache failed to drop revoked entries")


def announce(session: Session, *revoked: Revoked) -> None:
    """Tell every process, at the commit of `session`'s transaction, that `revoked` ended."""
    if not revoked:
        return
    if session.get_bind().dialect.name == "sqlite":
        bumped = affected(session.execute(update(RevocationCounter)
                                          .values(version=RevocationCounter.version + 1)))
        if bumped == 0:
            session.add(RevocationCounter(id=1, version=1))
    else:
        for payload in payloads(revoked):
            session.execute(text("SELECT pg_notify(:channel, :payload)"),
                            {"channel": CHANNEL, "payload": payload})
    event.listen(session, "after_commit", lambda _s: heard(revoked), once=True)


def payloads(revoked: Iterable[Revoked]) -> Iterator[str]:
    """`revoked` as NOTIFY payloads, one a line, each under `PAYLOAD_BYTES`."""
    lines: list[str] = []
    size = 0
    for line in map(str, revoked):
        length = len(line.encode()) + 1  # with its newline
        if lines and size + length > PAYLOAD_BYTES:
            yield "\n".join(lines)
            lines, size = [], 0
        lines.append(line)
        size += length
    if lines:
        yield "\n".join(lines)


def application_name(pid: int | None = None) -> str:
    """How a process's (by default this one's) LISTEN connections are named in
    pg_stat_activity."""
    return f"mailhaven-revocations {os.getpid() if pid is None else pid}"


class Watcher(Hearing):
    """A thread hearing one database's revocations for this process's caches."""

    name = "revocations"
    channel = CHANNEL
    heard_again = "listening again; caches cleared"

    def __init__(self, db: Database, *, poll: float = POLL_SECONDS,
                 liveness: float = LIVENESS_SECONDS) -> None:
        super().__init__(db, poll, liveness)

    def _poll(self) -> None:
        seen: int | None = None
        while not self._stop.is_set():
            try:
                with self.db.sessions() as session:
                    version = session.scalar(select(RevocationCounter.version)) or 0
            except Exception:  # the database locked or away: read again at the next turn
                version = None
            if version is not None and version != seen:
                if seen is not None:
                    heard(None)
                seen = version
                self.listening.set()
            self._stop.wait(self.poll)

    def _listening(self) -> None:
        heard(None)  # whatever was announced before this LISTEN went unheard

    def _hear(self, conn: psycopg.Connection) -> None:
        for note in conn.notifies(timeout=self.poll):
            heard(Revoked.parse(note.payload))


def watch(dbs: Iterable[Database]) -> Callable[[], None]:
    """A watcher for each database (each once); the function that stops them."""
    unique = {id(db): db for db in dbs}
    watchers = [Watcher(db).start() for db in unique.values()]

    def stop() -> None:
        for watcher in watchers:
            watcher.stop()

    return stop
