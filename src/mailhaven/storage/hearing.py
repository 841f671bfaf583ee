"""A thread in each process hearing the other processes that share a database: on
PostgreSQL a LISTEN on a connection of its own (kept alive, connected again after an
outage), on SQLite (one machine) a poll of something every process writes. `revocations`
and `queued` hear through it.

A LISTEN connection that dies quietly (a peer gone, a NAT or firewall forgetting it, a
server that stops answering) raises nothing by itself: TCP keepalives and a user timeout
close a dead one, and `answers` — a `SELECT 1` that must be answered in time — closes one
that is open but deaf; either way the listener connects again."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import ClassVar, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from mailhaven.storage.db import Database

log = logging.getLogger(__name__)

RECONNECT_FIRST, RECONNECT_MOST = 0.5, 5.0  # PostgreSQL: pauses between LISTEN attempts
# libpq: a dead peer found within ~25 s when idle, unacknowledged writes given up after 30 s
LISTEN_CONNECTION = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                     "keepalives_count": 3, "tcp_user_timeout": 30_000, "connect_timeout": 10}


class Hearing:
    """The thread: `_listen` on PostgreSQL, `_poll` on SQLite (each until `_stop`)."""

    name: ClassVar[str]  # the thread's
    channel: ClassVar[str]  # PostgreSQL: what it LISTENs to
    outage_level: ClassVar[int] = logging.WARNING  # how an outage and its end are logged
    heard_again: ClassVar[str] = "listening again"  # logged when a LISTEN follows an outage

    def __init__(self, db: Database, poll: float, liveness: float) -> None:
        self.db, self.poll, self.liveness = db, poll, liveness
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.listening = threading.Event()  # set once the first LISTEN / poll is done

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        if self.db.is_sqlite:
            self._poll()
        else:
            self._listen()

    def _poll(self) -> None:
        raise NotImplementedError

    def _listen(self) -> None:
        """LISTEN on a connection of its own until stopped, `_hear` in turn with a liveness
        check (`answers`); after any failure, connect again, the pauses doubling."""
        pause, outage = RECONNECT_FIRST, False
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self.db), autocommit=True,
                                     application_name=self.application_name()) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._listening()
                    if outage:
                        log.log(self.outage_level, "%s: %s", self.name, self.heard_again)
                    self.listening.set()
                    outage, pause = False, RECONNECT_FIRST
                    checked = time.monotonic()
                    while not self._stop.is_set():
                        self._hear(conn)
                        if time.monotonic() - checked >= self.liveness:
                            answers(conn, within=self.liveness)
                            checked = time.monotonic()
            except Exception as exc:
                if not outage:
                    log.log(self.outage_level, "%s: not listening (%s); trying again",
                            self.name, type(exc).__name__)
                outage = True
                self._stop.wait(pause)
                pause = min(pause * 2, RECONNECT_MOST)

    def application_name(self) -> str:
        """How the LISTEN connection is named in pg_stat_activity."""
        return f"mailhaven-{self.name} {os.getpid()}"

    def _listening(self) -> None:
        """A LISTEN has begun: what was said before it went unheard."""
        raise NotImplementedError

    def _hear(self, conn: psycopg.Connection) -> None:
        """One turn on the LISTEN connection: its notifications, for at most `poll`."""
        raise NotImplementedError


def answers(conn: psycopg.Connection, *, within: float) -> None:
    """A `SELECT 1` on the LISTEN connection; one not answered `within` seconds has its
    socket shut, so the wait ends in an error rather than never."""
    cut = threading.Timer(within, _shut, args=(conn,))
    cut.start()
    try:
        conn.execute("SELECT 1")
    finally:
        cut.cancel()


def _shut(conn: psycopg.Connection) -> None:
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):  # already closed: nothing to wake
        pass


def conninfo(db: Database) -> str:
    """libpq's form of the engine's URL (the password kept), with `LISTEN_CONNECTION`."""
    url = db.engine.url.set(drivername="postgresql")
    return make_conninfo(url.render_as_string(hide_password=False), **LISTEN_CONNECTION)
