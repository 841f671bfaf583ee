"""Deliver one message to one recipient over SMTP, reusing connections per mail host."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass

import aiosmtplib

from mailhaven.delivery.mx import MailHost
from mailhaven.delivery.replies import (
    DeliveryFailure,
    SmtpReply,
    failure_for,
    local_failure,
)

IDLE_SECONDS = 30.0
CONNECTIONS_PER_HOST = 10
COMMAND_TIMEOUT = 120.0


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
    def __init__(self, helo_name: str, *, per_host: int = CONNECTIONS_PER_HOST) -> None:
        self._helo = helo_name
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
        started = time.monotonic()
        reused = self._take_idle(key)
        conn = reused or await self._connect(host, require_tls, verify_tls)
        try:
            reply = await self._transaction(conn, sender, recipient, data)
        except aiosmtplib.SMTPServerDisconnected as exc:
            conn.client.close()
            if reused is None:
                raise local_failure(421, "4.4.2", f"Connection lost: {exc}", permanent=False,
                                    mx_host=host.name) from exc
            # A pooled connection the server had closed while idle: one fresh try.
            conn = await self._connect(host, require_tls, verify_tls)
            try:
                reply = await self._transaction(conn, sender, recipient, data)
            except aiosmtplib.SMTPServerDisconnected as again:
                conn.client.close()
                raise local_failure(421, "4.4.2", f"Connection lost: {again}",
                                    permanent=False, mx_host=host.name) from again
        except (aiosmtplib.SMTPTimeoutError, OSError) as exc:
            conn.client.close()
            raise local_failure(421, "4.4.2", f"Connection failed: {exc}", permanent=False,
                                mx_host=host.name) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await self._release_after_error(key, conn)
            raise failure_for(SmtpReply.parse(exc.code, exc.message), host.name) from exc
        self._release(key, conn)
        return Delivered(reply, host.name, conn.tls, conn.verified,
                         time.monotonic() - started)

    @staticmethod
    async def _transaction(conn: _Connection, sender: str, recipient: str,
                           data: bytes) -> SmtpReply:
        client = conn.client
        await client.mail(sender, timeout=COMMAND_TIMEOUT)
        await client.rcpt(recipient, timeout=COMMAND_TIMEOUT)
        response = await client.data(data, timeout=COMMAND_TIMEOUT * 5)
        return SmtpReply.parse(response.code, response.message)

    async def _connect(self, host: MailHost, require_tls: bool, verify_tls: bool) -> _Connection:
        client = aiosmtplib.SMTP(hostname=host.address, port=host.port,
                                 local_hostname=self._helo, start_tls=False, timeout=60)
        try:
            await client.connect()
            await client.ehlo()
            tls = verified = False
            if client.supports_extension("starttls"):
                try:
                    await client.starttls(server_hostname=host.name,
                                          tls_context=_tls_context(verify_tls))
                    tls, verified = True, verify_tls
                except aiosmtplib.SMTPException:
                    if require_tls:
                        raise
                    client.close()  # a failed handshake leaves the session unusable
                    client = aiosmtplib.SMTP(hostname=host.address, port=host.port,
                                             local_hostname=self._helo, start_tls=False,
                                             timeout=60)
                    await client.connect()
                    await client.ehlo()
            if require_tls and not tls:
                client.close()
                raise _Unreachable(local_failure(
                    421, "4.7.4", f"{host.name} does not offer STARTTLS and TLS is required",
                    permanent=False, mx_host=host.name, reason="tls"))
            return _Connection(client, host, tls, verified)
        except aiosmtplib.SMTPConnectResponseError as exc:
            client.close()
            raise _Unreachable(failure_for(SmtpReply.parse(exc.code, exc.message),
                                           host.name)) from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise _Unreachable(local_failure(421, "4.4.1", f"Could not connect to {host.name}:"
                                             f" {exc}", permanent=False,
                                             mx_host=host.name)) from exc

    def _take_idle(self, key: tuple) -> _Connection | None:
        pool = self._idle[key]
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if conn.client.is_connected and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.client.close()
        return None

    def _release(self, key: tuple, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle[key].append(conn)

    async def _release_after_error(self, key: tuple, conn: _Connection) -> None:
        try:
            await conn.client.rset(timeout=30)
        except (aiosmtplib.SMTPException, OSError):
            conn.client.close()
            return
        self._release(key, conn)

    async def close(self) -> None:
        for pool in self._idle.values():
            for conn in pool:
                try:
                    await conn.client.quit(timeout=5)
                except (aiosmtplib.SMTPException, OSError):
                    conn.client.close()
        self._idle.clear()


class _Unreachable(Exception):
    """This host could not be used; the next MX host may be."""

    def __init__(self, failure: DeliveryFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure
