"""The submission server on loopback ports of its own, in a thread with its own event loop,
and an SMTP login to submit with."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaven.clock import FrozenClock
from mailhaven.credentials import service as credentials
from mailhaven.domains.service import owned_domain
from mailhaven.services import Services
from mailhaven.submission.auth import Logins
from mailhaven.submission.server import Submission, start_submission
from mailhaven.submission.throttle import AuthThrottle
from mailhaven.submission.tls import SELF_SIGNED_FILE

LOGIN = "mailer@mg.acme.test"
PASSWORD = "s3cret-pass"


class RunningSubmission:
    """`start_submission` as `serve` runs it, on ports the OS picks."""

    def __init__(self, services: Services, throttle: AuthThrottle | None = None) -> None:
        self.services = services
        self.throttle = throttle
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.submission: Submission | None = None

    def __enter__(self) -> RunningSubmission:
        starttls = socket.create_server(("127.0.0.1", 0))
        implicit = socket.create_server(("127.0.0.1", 0))
        self.port, self.tls_port = starttls.getsockname()[1], implicit.getsockname()[1]
        self.thread.start()
        logins = Logins(self.services, self.throttle)
        self.submission = asyncio.run_coroutine_threadsafe(
            start_submission(self.services, starttls, implicit, logins=logins),
            self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.submission is not None
            await self.submission.aclose()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    @property
    def cafile(self) -> Path:
        return self.services.settings.data_dir / SELF_SIGNED_FILE

    def context(self) -> ssl.SSLContext:
        """A client context that trusts the server's self-signed certificate, and checks it
        names the host (127.0.0.1) as any client would."""
        return ssl.create_default_context(cafile=str(self.cafile))


def on_loopback(services: Services) -> Services:
    """The services with MAILHAVEN_HOSTNAME 127.0.0.1: the self-signed certificate then
    names the address clients connect to, and they check it as they would a real one."""
    return dataclasses.replace(services, settings=services.settings.with_(hostname="127.0.0.1"))


@pytest.fixture
def credential(services: Services, account: tuple[str, str],
               domain: str) -> credentials.Credential:
    with services.db.transaction() as session:
        return credentials.create(session, services.vault,
                                  owned_domain(session, account[0], domain), LOGIN, PASSWORD,
                                  services.clock)


@pytest.fixture
def submission(services: Services, credential: credentials.Credential, clock: FrozenClock,
               ) -> Iterator[RunningSubmission]:
    """The server, with a failed AUTH answered 10 ms later per recent failure rather than
    500 ms (the delays themselves are test_throttle's)."""
    with RunningSubmission(on_loopback(services), AuthThrottle(clock, delay_step=0.01)) \
            as running:
        yield running
