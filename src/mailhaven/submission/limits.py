"""What both SMTP doors (submission and the MX) bound per client: sessions open at once per
address, a session's refused commands, and its silence. Settings in `config.Settings`
(`smtp_*`, `mx_max_sessions*`); the table is docs/security.md, "Limits at every door"."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP
from prometheus_client import Counter

TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, please try again later"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors: closing connection"
IDLE_TOO_LONG = "421 4.4.2 Idle for too long: closing connection"
COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
# aiosmtpd's own wording of it, without an enhanced code
AIOSMTPD_COMMAND_TOO_LONG = "500 Command line too long"

CLOSED = Counter("mailhaven_smtp_sessions_closed_total",
                 "SMTP sessions refused or closed by a limit", ["door", "limit"])


class Sessions:
    """The sessions open at once, in all and per client address: each holds a reader, a
    writer and up to a message in memory, so their number is bounded. Used on the event
    loop only: no lock."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.open: dict[str, int] = {}
        self.count = 0

    def enter(self, ip: str) -> bool:
        if self.count >= self.total or self.open.get(ip, 0) >= self.per_ip:
            return False
        self.count += 1
        self.open[ip] = self.open.get(ip, 0) + 1
        return True

    def leave(self, ip: str) -> None:
        self.count -= 1
        left = self.open.get(ip, 1) - 1
        if left > 0:
            self.open[ip] = left
        else:
            self.open.pop(ip, None)


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
    """aiosmtpd's protocol with the limits above: a client address past its sessions is
    told 421 at connect and closed; a session's errors are counted (`ErrorBudget`); a
    session silent for `timeout` seconds is told 421 before it is closed (aiosmtpd just
    closes it). `door` names it in the metrics."""

    door = "smtp"

    def __init__(self, handler: Any, *, sessions: Sessions, errors: ErrorBudget,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions, self.errors = sessions, errors
        self._slot: str | None = None  # the client address counted in `sessions`
        self._turned_away = False

    def exempt(self, _ip: str) -> bool:
        """Whether the address's sessions are not counted (the operator's networks)."""
        return False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._slot is None and self._original_transport is None:  # not STARTTLS's
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) else ""
            if not self.exempt(ip):
                if not self.sessions.enter(ip):
                    CLOSED.labels(self.door, "sessions").inc()
                    self._turned_away = True
                    assert isinstance(transport, asyncio.WriteTransport)
                    transport.write(f"{TOO_MANY_SESSIONS}\r\n".encode())
                    transport.close()
                    return
                self._slot = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._turned_away:
            return
        if self._slot is not None:
            self.sessions.leave(self._slot)
            self._slot = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._turned_away:
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
