"""Deliver one message to one recipient over SMTP, reusing connections per mail host."""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from dataclasses import dataclass

import aiosmtplib

from mailhaven.clock import monotonic
from mailhaven.delivery.mx import MailHost
from mailhaven.delivery.replies import (
    DeliveryFailure,
    SmtpReply,
    about_recipient,
    failure_for,
    local_failure,
)
from mailhaven.failure_reasons import FailureReason

IDLE_SECONDS = 30.0
CONNECTIONS_PER_HOST = 10


@dataclass(frozen=True)
class Timeouts:
    """How long a silent server is waited for (MAILHAVEN_SMTP_*_TIMEOUT). RFC 5321
    §4.5.3.2 suggests longer waits; the defaults keep a whole attempt (connect, TLS, MAIL,
    RCPT, DATA) well inside the default lease, so no other worker takes the copy."""

    connect: float = 30.0  # the TCP connection, the greeting, EHLO and STARTTLS
    command: float = 60.0  # MAIL, RCPT
    data: float = 300.0  # the message and the answer to its final dot


@dataclass(frozen=True)
class Delivered:
    reply: SmtpReply
    mx_host: str
    tls: bool
    certificate_verified: bool
    session_seconds: float


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    host: MailHost
    tls: bool
    verified: bool
    idle_since: float = 0.0


def _tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # opportunistic TLS: encrypt, don't authenticate
    return context


class SmtpTransport:
    def __init__(self, helo_name: str, *, per_host: int = CONNECTIONS_PER_HOST,
                 timeouts: Timeouts | None = None) -> None:
        self._helo = helo_name
        self._timeouts = timeouts or Timeouts()
        self._idle: dict[tuple, list[_Connection]] = defaultdict(list)
        self._limits: dict[tuple, asyncio.Semaphore] = {}
        self._per_host = per_host

    async def deliver(self, hosts: list[MailHost], sender: str, recipient: str, data: bytes,
                      *, require_tls: bool = False, verify_tls: bool = False) -> Delivered:
        """Try each host in order until one answers; a reply (2xx, 4xx, 5xx) ends the try."""
        unreachable: DeliveryFailure | None = None
        for host in hosts:
            key = (host.address, host.port, require_tls, verify_tls)
            limit = self._limits.setdefault(key, asyncio.Semaphore(self._per_host))
            async with limit:
                try:
                    return await self._on_host(key, host, sender, recipient, data,
                                               require_tls, verify_tls)
                except _Unreachable as exc:
                    unreachable = exc.failure
        raise unreachable or local_failure(451, "4.4.1", "No mail host could be reached",
                                           permanent=False)

    async def _on_host(self, key: tuple, host: MailHost, sender: str, recipient: str,
                       data: bytes, require_tls: bool, verify_tls: bool) -> Delivered:
        started = monotonic()
        reused = self._take_idle(key)
        conn = reused or await self._connect(host, require_tls, verify_tls)
        try:
            try:
                reply = await self._transaction(conn, sender, recipient, data)
            except aiosmtplib.SMTPServerDisconnected:
                if reused is None:
                    raise
                # A pooled connection the server had closed while idle: one fresh try,
                # whose outcome is classified like any other.
                conn.client.close()
                conn = await self._connect(host, require_tls, verify_tls)
                reply = await self._transaction(conn, sender, recipient, data)
        except DeliveryFailure as failure:
            self._release(key, conn)  # refused before a command was sent: the session is fine
            _in_session(failure, conn)
            raise
        except aiosmtplib.SMTPResponseException as exc:
            await self._release_after_error(key, conn)
            reply = SmtpReply.parse(exc.code, exc.message)
            command = ("rcpt" if isinstance(exc, aiosmtplib.SMTPRecipientRefused) else
                       "data" if isinstance(exc, aiosmtplib.SMTPDataError) else "session")
            raise _in_session(failure_for(reply, host.name, about_recipient=about_recipient(
                command, reply)), conn) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            conn.client.close()
            raise _in_session(local_failure(421, "4.4.2", f"Connection lost: {exc}",
                                            permanent=False, mx_host=host.name), conn) from exc
        except (aiosmtplib.SMTPTimeoutError, OSError) as exc:
            conn.client.close()
            raise _in_session(local_failure(421, "4.4.2", f"Connection failed: {exc}",
                                            permanent=False, mx_host=host.name), conn) from exc
        except asyncio.CancelledError:  # the attempt's deadline: the session is mid-command
            conn.client.close()
            raise
        self._release(key, conn)
        return Delivered(reply, host.name, conn.tls, conn.verified,
                         monotonic() - started)

    async def _transaction(self, conn: _Connection, sender: str, recipient: str,
                           data: bytes) -> SmtpReply:
        client = conn.client
        # RFC 6531: UTF-8 in the envelope or in the headers needs SMTPUTF8.
        utf8 = not (sender + recipient).isascii() or not data.split(b"\r\n\r\n", 1)[0].isascii()
        if utf8 and not client.supports_extension("smtputf8"):
            raise local_failure(553, "5.6.7", f"SMTPUTF8 is required, but was not offered by "
                                f"{conn.host.name}", permanent=True, mx_host=conn.host.name)
        encoding, options = ("utf-8", ["SMTPUTF8"]) if utf8 else ("ascii", [])
        if not data.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152
        timeouts = self._timeouts
        await client.mail(sender, options=options, encoding=encoding, timeout=timeouts.command)
        await client.rcpt(recipient, encoding=encoding, timeout=timeouts.command)
        response = await client.data(data, timeout=timeouts.data)
        return SmtpReply.parse(response.code, response.message)

    def _client(self, host: MailHost) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(hostname=host.address, port=host.port, local_hostname=self._helo,
                               start_tls=False, timeout=self._timeouts.connect)

    async def _connect(self, host: MailHost, require_tls: bool, verify_tls: bool) -> _Connection:
        client = self._client(host)
        try:
            await client.connect()
            await client.ehlo()
            tls = verified = False
            if client.supports_extension("starttls"):
                try:
                    await client.starttls(server_hostname=host.name,
                                          tls_context=_tls_context(verify_tls))
                    tls, verified = True, verify_tls
                    await client.ehlo()  # RFC 3207: what the server offers may change under TLS
                except (aiosmtplib.SMTPException, ssl.SSLError) as exc:
                    client.close()  # a failed handshake leaves the session unusable
                    if require_tls:
                        raise _Unreachable(local_failure(
                            421, "4.7.5", f"TLS with {host.name} failed: {exc}",
                            permanent=False, mx_host=host.name, reason=FailureReason.TLS)) from exc
                    client = self._client(host)
                    await client.connect()
                    await client.ehlo()
            if require_tls and not tls:
                client.close()
                raise _Unreachable(local_failure(
                    421, "4.7.4", f"{host.name} does not offer STARTTLS and TLS is required",
                    permanent=False, mx_host=host.name, reason=FailureReason.TLS))
            return _Connection(client, host, tls, verified)
        except aiosmtplib.SMTPConnectResponseError as exc:  # the greeting: not about anyone
            client.close()
            raise _Unreachable(failure_for(SmtpReply.parse(exc.code, exc.message),
                                           host.name, about_recipient=False)) from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise _Unreachable(local_failure(421, "4.4.1", f"Could not connect to {host.name}:"
                                             f" {exc}", permanent=False,
                                             mx_host=host.name)) from exc
        except asyncio.CancelledError:
            client.close()
            raise

    def _take_idle(self, key: tuple) -> _Connection | None:
        pool = self._idle[key]
        now = monotonic()
        while pool:
            conn = pool.pop()
            if conn.client.is_connected and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.client.close()
        return None

    def _release(self, key: tuple, conn: _Connection) -> None:
        conn.idle_since = monotonic()
        self._idle[key].append(conn)

    async def _release_after_error(self, key: tuple, conn: _Connection) -> None:
        try:
            await conn.client.rset(timeout=self._timeouts.command)
        except (aiosmtplib.SMTPException, OSError):
            conn.client.close()
            return
        self._release(key, conn)

    async def close(self) -> None:
        closing = []
        for pool in self._idle.values():
            for conn in pool:
                if conn.client.protocol is not None:
                    closing.append(conn.client.protocol)
                try:
                    await conn.client.quit(timeout=5)
                except (aiosmtplib.SMTPException, OSError):
                    conn.client.close()
        self._idle.clear()
        # A TLS session finishes its shutdown after close() returns: wait (briefly) until
        # each connection is really gone, so no socket outlives the worker.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while any(p.transport is not None for p in closing) and loop.time() < deadline:
            await asyncio.sleep(0.01)


def envelope_address(email: str) -> str:
    """The address as SMTP carries it: an internationalised domain in its ASCII (IDNA)
    form; a non-ASCII local part stays as it is, for SMTPUTF8."""
    local, _, domain = email.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise local_failure(553, "5.1.3", f"Invalid domain in {email}",
                            permanent=True) from exc


def _in_session(failure: DeliveryFailure, conn: _Connection) -> DeliveryFailure:
    """The failure, marked with the TLS state of the session it happened in."""
    failure.tls, failure.certificate_verified = conn.tls, conn.verified
    return failure


class _Unreachable(Exception):
    """This host could not be used; the next MX host may be."""

    def __init__(self, failure: DeliveryFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure
