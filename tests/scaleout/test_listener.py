"""The PostgreSQL revocations listener (`storage.revocations.Watcher`) in this process, on
the test's database: a revocation of many keys is announced in pieces NOTIFY accepts and
heard whole; a LISTEN connection that goes deaf without closing (a NAT or firewall that
forgot it) is noticed by the liveness check, replaced, and the caches cleared."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Collection

import pytest
from sqlalchemy.engine import make_url

from mailhaven.storage import revocations
from mailhaven.storage.db import Database
from mailhaven.storage.revocations import Revoked, Watcher

DEADLINE = 30.0  # generous: a loaded 2-core machine


class Heard:
    """A cache recording what the watcher's thread told it to drop (None: everything)."""

    def __init__(self) -> None:
        self.drops: list[Collection[Revoked] | None] = []
        revocations.subscribe(self)

    def drop(self, revoked: Collection[Revoked] | None) -> None:
        if threading.current_thread().name == "revocations":  # not the announcer's own
            self.drops.append(None if revoked is None else list(revoked))

    def clears(self) -> int:
        return sum(1 for drop in self.drops if drop is None)

    def keys(self) -> set[str]:
        return {r.value for drop in self.drops if drop for r in drop if r.kind == "key"}


def _until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def heard() -> Heard:
    return Heard()


def test_a_revocation_of_many_keys_is_announced_in_pieces_and_heard_whole(
        pg_database: str, heard: Heard) -> None:
    """300 digests are ~20 KB: one NOTIFY would refuse them (8000 bytes at most)."""
    db = Database(pg_database)
    watcher = Watcher(db).start()
    try:
        assert watcher.listening.wait(DEADLINE)
        digests = {secrets.token_hex(32) for _ in range(300)}
        with db.transaction() as session:
            revocations.announce(session, *(Revoked("key", d) for d in digests))
        _until(lambda: heard.keys() >= digests, "not every revoked key was heard")
    finally:
        watcher.stop()
        db.dispose()


class DeafeningProxy:
    """A TCP relay to PostgreSQL whose connections can go deaf: still open, carrying
    nothing either way, as after a NAT or firewall forgot them. New ones relay again."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.deaf: list[threading.Event] = []
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            deaf = threading.Event()
            self.deaf.append(deaf)
            self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, deaf), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, deaf: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if not deaf.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def deafen(self) -> None:
        for deaf in self.deaf:
            deaf.set()

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


def test_a_listen_connection_gone_deaf_is_replaced_and_the_caches_cleared(
        pg_database: str, heard: Heard) -> None:
    url = make_url(pg_database)
    proxy = DeafeningProxy(url.port or 5432)
    db = Database(url.set(host="127.0.0.1", port=proxy.port)
                  .render_as_string(hide_password=False))
    watcher = Watcher(db, liveness=0.5).start()
    try:
        assert watcher.listening.wait(DEADLINE)
        assert heard.clears() == 1  # the first LISTEN: whatever came before went unheard
        proxy.deafen()  # no error, no close: only the liveness check can tell
        _until(lambda: heard.clears() == 2, "the deaf LISTEN connection was never replaced")
    finally:
        watcher.stop()
        db.dispose()
        proxy.close()
