"""SMTP AUTH's check of a login and password: throttled, verified off the event loop, and a
recent success remembered so a sender that connects once per message isn't slowed by argon2.

The memory of successes is keyed by an HMAC of the login and password under a key this
process draws at start (so it holds no password, nor anything to test one against offline)
and holds the password hash it was checked against: each use reads the credential's current
hash by its id, one primary-key lookup, so a deleted credential or a changed password stops
working at once — the cache saves argon2's tenth of a second and 64 MiB, not the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from mailhaven.credentials.models import SmtpCredential
from mailhaven.credentials.service import (
    CONCURRENT_HASHES,
    Credential,
    authenticate,
    canonical_login,
)
from mailhaven.netpolicy import client_network
from mailhaven.services import Services
from mailhaven.submission.throttle import AuthThrottle

AUTH_FAILURES = Counter("mailhaven_smtp_auth_failures_total",
                        "SMTP AUTH attempts refused", ["reason"])
REMEMBERED_SECONDS = 15 * 60.0  # how long a verified login and password skip argon2
REMEMBERED_MAX = 10_000
BAD_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
THROTTLED = "454 4.7.0 Too many failed logins: try again later"
BUSY = "454 4.7.0 Too many logins at once: try again later"
# AUTH attempts waiting for argon2 at most (each a tenth of a second, CONCURRENT_HASHES at
# a time): past them an attempt is answered BUSY at once rather than queued without end
MAX_PENDING_HASHES = 64
NETWORK_PREFIX = 48  # an IPv6 client counts with its site's /48: a /64 each is too cheap


@dataclass(frozen=True)
class Login:
    """A credential AUTH proved, with the password hash it was proved against: what a
    session checks is still so before each message, and what a success is remembered as."""

    credential: Credential
    password_hash: str
    at: float


class Logins:
    """The submission server's logins: one per process, shared by its listeners."""

    def __init__(self, services: Services, throttle: AuthThrottle | None = None, *,
                 max_pending: int = MAX_PENDING_HASHES) -> None:
        self._services, self._max_pending = services, max_pending
        self.throttle = throttle or AuthThrottle(services.clock)
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[bytes, Login] = OrderedDict()
        self._pending = 0  # attempts waiting for or in argon2
        # argon2 takes its 64 MiB in these threads, never in the ones sends are written in
        self._hashers = ThreadPoolExecutor(CONCURRENT_HASHES, thread_name_prefix="smtp-auth")

    def close(self) -> None:
        self._hashers.shutdown(wait=False, cancel_futures=True)

    async def check(self, peer: str | None, login: bytes, password: bytes) -> Login | str:
        """The login that `login` and `password` prove, or the reply refusing them."""
        network = client_network(peer, NETWORK_PREFIX)
        try:
            name, secret = canonical_login(login.decode()), password.decode()
        except UnicodeDecodeError:
            name, secret = canonical_login(login.decode("utf-8", "replace")), None
        async with self.throttle.attempt(network, name) as refused:
            if refused is not None:
                AUTH_FAILURES.labels(f"throttled-{refused}").inc()
                return BUSY if refused.startswith("busy") else THROTTLED
            credential = None if secret is None else await self._verify(name, secret)
            if isinstance(credential, str):
                AUTH_FAILURES.labels("throttled-busy-server").inc()
                return BUSY
            if credential is not None:
                self.throttle.succeeded(network, name)
                return credential
            AUTH_FAILURES.labels("credentials").inc()
            await asyncio.sleep(self.throttle.failed(network, name))
            return BAD_CREDENTIALS

    async def _verify(self, login: str, password: str) -> Login | str | None:
        """The credential, None, or BUSY when `max_pending` attempts wait for argon2."""
        key = hmac.new(self._key, f"{login}\0{password}".encode(),
                       hashlib.sha256).digest()
        remembered = self._remembered.get(key)
        now = self._services.clock.now()
        if (remembered is not None and now - remembered.at < REMEMBERED_SECONDS
                and await self.current(remembered)):
            return remembered
        self._remembered.pop(key, None)
        if self._pending >= self._max_pending:
            return BUSY
        self._pending += 1
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self._hashers, self._authenticate, login, password)
        finally:
            self._pending -= 1
        if found is not None:
            self._remembered[key] = proved = Login(found[0], found[1], now)
            while len(self._remembered) > REMEMBERED_MAX:
                self._remembered.popitem(last=False)
            return proved
        return None

    def _authenticate(self, login: str, password: str) -> tuple[Credential, str] | None:
        """The credential and the hash it was verified against (read in the same session)."""
        services = self._services
        with services.db.sessions() as session:
            credential = authenticate(session, services.vault, login, password)
            if credential is None:
                return None
            hashed = session.scalar(select(SmtpCredential.password_hash)
                                    .where(SmtpCredential.id == credential.id))
        return (credential, hashed) if hashed is not None else None

    async def current(self, login: Login) -> bool:
        """Whether the login's credential still exists with the password hash it was
        proved against (one primary-key read)."""
        return await asyncio.to_thread(self._current, login)

    def _current(self, remembered: Login) -> bool:
        with self._services.db.sessions() as session:
            return still_current(session, remembered)


def still_current(session: DbSession, login: Login) -> bool:
    """Whether the login's credential still exists with the password hash it was proved
    against (one primary-key read, in the caller's session)."""
    hashed = session.scalar(select(SmtpCredential.password_hash)
                            .where(SmtpCredential.id == login.credential.id))
    return hashed is not None and hmac.compare_digest(hashed, login.password_hash)
