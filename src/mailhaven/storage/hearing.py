"""A thread in each process hearing the other processes that share a database: on
PostgreSQL a LISTEN on a connection of its own (kept alive, connected again after an
outage), on SQLite (one machine) a poll of something every process writes. `revocations`
and `queued` hear through it.

A LISTEN connection that dies quietly (a peer gone, a NAT or firewall forgetting it, a
server that stops answering) raises nothing by itself: TCP keepalives and a user timeout
close a dead one, and `answers` — a `SELECT 1` that must be answered in time — closes one
that is open but deaf; either way the listener connects again."""

from __future__ import annotations

import os
import socket
import threading
from typing import ClassVar, Self

import psycopg
from psycopg.conninfo import make_conninfo

from mailhaven.storage.db import Database

RECONNECT_FIRST, RECONNECT_MOST = 0.5, 5.0  # PostgreSQL: pauses between LISTEN attempts
# libpq: a dead peer found within ~25 s when idle, unacknowledged writes given up after 30 s
LISTEN_CONNECTION = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                     "keepalives_count": 3, "tcp_user_timeout": 30_000, "connect_timeout": 10}


class Hearing:
    """The thread: `_listen` on PostgreSQL, `_poll` on SQLite (each until `_stop`)."""

    name: ClassVar[str]  # the thread's

    def __init__(self, db: Database, poll: float) -> None:
        self.db, self.poll = db, poll
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
