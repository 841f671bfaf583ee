"""What both SMTP doors (submission and the MX) bound per client: sessions open at once, in
all and per client network (`netpolicy.client_network`: an IPv4 address, an IPv6 /64), a
session's refused commands, and its silence; on the implicit-TLS port, the TLS handshake's
time. Settings in `config.Settings` (`smtp_*`, `mx_max_sessions*`); the table is
docs/security.md, "Limits at every door"."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP
from prometheus_client import Counter

from mailhaven.netpolicy import client_network

TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, please try again later"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors: closing connection"
IDLE_TOO_LONG = "421 4.4.2 Idle for too long: closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please try again later"
COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
# aiosmtpd's own wording of it, without an enhanced code
AIOSMTPD_COMMAND_TOO_LONG = "500 Command line too long"

CLOSED = Counter("mailhaven_smtp_sessions_closed_total",
                 "SMTP sessions refused or closed by a limit", ["door", "limit"])


class Sessions:
    """The sessions open at once, in all and per client network: each holds a reader, a
    writer and up to a message in memory, so their number is bounded. A network, not an
    address: one machine usually holds a whole IPv6 /64, and would otherwise open
    `per_network` sessions from each of its addresses. Used on the event loop only: no
    lock."""

    def __init__(self, total: int, per_network: int) -> None:
        self.total, self.per_network = total, per_network
        self.open: dict[str, int] = {}  # client network -> its sessions
        self.count = 0
        self.live: set[LimitedSMTP] = set()  # every connection open now, counted or not

    def enter(self, ip: str) -> str | None:
        """Count a session from `ip`: the network it is counted under (for `leave`), or
        None when the door is full or the network has its share."""
        network = client_network(ip)
        if self.count >= self.total or self.open.get(network, 0) >= self.per_network:
            return None
        self.count += 1
        self.open[network] = self.open.get(network, 0) + 1
        return network

    def leave(self, network: str) -> None:
        self.count -= 1
        left = self.open.get(network, 1) - 1
        if left > 0:
            self.open[network] = left
        else:
            self.open.pop(network, None)

    async def close(self, seconds: float = 2.0) -> None:
        """At shutdown, once nothing listens: each open session is told 421 and closed, and
        cut if it is not gone within `seconds` — a client mid-session learns why (RFC 5321
        §3.8), and no connection outlives its server (a loop closed under one leaks it)."""
        closing = list(self.live)
        for smtp in closing:
            smtp.shut()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.live and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for smtp in list(self.live):
            smtp.cut()
        # Each session's own task ends once its connection is lost.
        tasks = [task for smtp in closing if (task := smtp.task) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)


class Closing:
    """An SMTP door closed as an asyncio.Server is (`close`, then `wait_closed`; or
    `aclose`), its open sessions with it."""

    servers: list[asyncio.Server]
    sessions: Sessions

    def close(self) -> None:
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        await self.sessions.close()
        for server in self.servers:
            await server.wait_closed()

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()


@dataclass
class Door(Closing):
    servers: list[asyncio.Server]
    sessions: Sessions


@dataclass
class ErrorBudget:
    """A session's refused commands (every 5xx reply, and 454: a refused AUTH): past
    `soft` each is answered `delay` seconds late, and at `hard` the session is told 421 and
    closed — a client guessing logins or probing for addresses pays in time and
    connections. 4xx replies that ask the client to try again (452 past the recipients
    per message, 451 on our side's trouble) are not its errors."""

    soft: int
    hard: int
    delay: float
    count: int = 0

    def note(self, reply: str) -> tuple[float, bool]:
        """Count `reply` if it is an error: how long to wait before sending it, and
        whether to close the session after it."""
        if not (reply.startswith("5") or reply.startswith("454")):
            return 0.0, False
        self.count += 1
        return (self.delay if self.count > self.soft else 0.0), self.count >= self.hard


class LimitedSMTP(SMTP):
    """aiosmtpd's protocol with the limits above: a client network past its sessions, or
    any client once the door is full, is told 421 at connect and closed; a session's
    errors are counted (`ErrorBudget`); a session silent for `timeout` seconds is told 421
    before it is closed (aiosmtpd just closes it). `door` names it in the metrics.

    With `implicit_tls` (port 465), the session is counted when the TCP connection is
    accepted, before its TLS handshake — which gets `handshake_seconds`, then the
    connection is closed — so that connections that never finish one are counted too, and
    can't pile up. One turned away there is closed without a handshake (a 421 in clear
    text is nothing a TLS client could read)."""

    door = "smtp"

    def __init__(self, handler: Any, *, sessions: Sessions, errors: ErrorBudget,
                 implicit_tls: ssl.SSLContext | None = None, handshake_seconds: float = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions, self.errors = sessions, errors
        self.implicit_tls, self.handshake_seconds = implicit_tls, handshake_seconds
        self._slot: str | None = None  # the client network counted in `sessions`
        self._turned_away = False
        self._handshake: asyncio.Task[None] | None = None  # implicit TLS's, until done
        self._accepted: asyncio.BaseTransport | None = None  # the TCP connection's transport

    def exempt(self, _ip: str) -> bool:
        """Whether the address's sessions are not counted (the operator's networks)."""
        return False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        accepted = self._handshake is None and self._original_transport is None
        if accepted:  # the TCP connection: not STARTTLS's, nor implicit TLS's when done
            self._accepted = transport
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) else ""
            if not self.exempt(ip):
                self._slot = self.sessions.enter(ip)
                if self._slot is None:
                    CLOSED.labels(self.door, "sessions").inc()
                    self._turned_away = True
                    assert isinstance(transport, asyncio.WriteTransport)
                    if self.implicit_tls is None:
                        transport.write(f"{TOO_MANY_SESSIONS}\r\n".encode())
                    transport.close()
                    return
            self.sessions.live.add(self)
            if self.implicit_tls is not None:
                assert isinstance(transport, asyncio.Transport)
                transport.pause_reading()  # the handshake reads first
                self._handshake = self.loop.create_task(self._start_tls(transport))
                return
        super().connection_made(transport)

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        """Implicit TLS: the handshake, given `handshake_seconds`; then the session."""
        assert self.implicit_tls is not None
        try:
            wrapped = await self.loop.start_tls(
                transport, self, self.implicit_tls, server_side=True,
                ssl_handshake_timeout=self.handshake_seconds)
        except OSError:  # refused, reset, timed out (TimeoutError): the client's affair
            CLOSED.labels(self.door, "handshake").inc()
            transport.close()
            self._leave()
            return
        except BaseException:
            transport.close()
            self._leave()
            raise
        if wrapped is None or wrapped.is_closing():  # the client left as it ended
            self._leave()
            return
        self.connection_made(wrapped)

    def _leave(self) -> None:
        self.sessions.live.discard(self)
        if self._slot is not None:
            self.sessions.leave(self._slot)
            self._slot = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """What runs the session now: implicit TLS's handshake, then aiosmtpd's client loop."""
        running = getattr(self, "_handler_coroutine", None)
        return running if running is not None else self._handshake

    def shut(self) -> None:
        """The server is stopping: 421 to a session that has begun, then close."""
        transport = self.transport or self._accepted
        if transport is None or transport.is_closing():
            return
        if self.transport is not None:
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(f"{SHUTTING_DOWN}\r\n".encode())
        transport.close()

    def cut(self) -> None:
        """Closed without waiting for the client (a TLS close waits for the peer's)."""
        for transport in (self.transport, self._accepted):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._leave()

    def connection_lost(self, error: Exception | None) -> None:
        if self._turned_away:
            return
        self._leave()
        if self.session is not None:  # else implicit TLS's handshake failed: no session began
            super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._turned_away or self.session is None:  # refused, or still in the handshake
            return False
        return super().eof_received()

    async def push(self, status: AnyStr) -> None:
        if status == AIOSMTPD_COMMAND_TOO_LONG:
            status = COMMAND_TOO_LONG  # type: ignore[assignment]
        delay, close = self.errors.note(status) if isinstance(status, str) else (0.0, False)
        if delay:
            await asyncio.sleep(delay)
        await super().push(status)
        if close and self.transport is not None:
            CLOSED.labels(self.door, "errors").inc()
            await super().push(TOO_MANY_ERRORS)
            self.transport.close()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            assert isinstance(self.transport, asyncio.WriteTransport)
            CLOSED.labels(self.door, "idle").inc()
            self.transport.write(f"{IDLE_TOO_LONG}\r\n".encode())
        super()._timeout_cb()
