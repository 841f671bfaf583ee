"""POSTing the claimed rows of a leased queue to customers' URLs, with Mailgun's retry
schedule: what the webhook sender (`webhooks.sender`) and the route-POST sender
(`inbound.posts`) share.

A 2xx is success; a 406 means "stop" (Mailgun's rule); anything else, a timeout or a
refused connection is retried after 10m, 10m, 15m, 30m, 1h, 2h and 4h (about 8 hours), then
given up; a URL that can't work or a non-public target is given up at once. Each POST is
settled on its own, fenced by its claim's lease: one that fails never holds up the others,
and a sender that dies lets its leases run out. A settle that meets a database outage is
kept and written when the database returns, while the claim lasts (`storage.outcomes`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from mailhaven import __version__
from mailhaven.clock import monotonic
from mailhaven.runner import Runner
from mailhaven.services import Services
from mailhaven.storage.db import is_unavailable
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.storage.outcomes import written_through_outage
from mailhaven.webhooks.models import GAVE_UP, PENDING, REFUSED, SENT
from mailhaven.webhooks.network import Refused, checked_transport

log = logging.getLogger("mailhaven.webhooks")

RETRY_DELAYS = (600, 600, 900, 1800, 3600, 7200, 14400)
TIMEOUT_SECONDS = 10.0  # for the whole POST, not per read: a dripped answer is cut too


class NotSent(Exception):
    """No request was made: a `final` reason is given up at once, any other is an attempt
    retried on the schedule."""

    def __init__(self, reason: str, *, final: bool) -> None:
        super().__init__(reason)
        self.final = final


@dataclass(frozen=True)
class Content:
    """A POST's body with headers besides its Content-Type (a signature over the body)."""

    type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Claimed(Protocol):
    """What a claimed POST tells the poster about itself."""

    @property
    def row_id(self) -> int: ...
    @property
    def lease(self) -> Lease: ...  # the claim that holds it: only it may settle it
    @property
    def url(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def attempt_log(self) -> list[dict[str, Any]]: ...


P = TypeVar("P", bound=Claimed)


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    status: int | None
    error: str
    outcome: str  # SENT, REFUSED, GAVE_UP, or PENDING (tried again later)
    seconds: float


class Poster(Runner, Generic[P]):
    """A runner that claims due rows (`claim`), builds each one's request (`request`),
    POSTs it and settles the row with the attempt added to its log."""

    queue: ClassVar[LeasedQueue]
    product: ClassVar[str]  # the User-Agent's product name
    idle_seconds = 1.0
    default_concurrency: ClassVar[int] = 20  # POSTs at once

    def __init__(self, services: Services, *, owner: str | None = None,
                 concurrency: int | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.services = services
        self.owner = owner or f"{self.name}-{secrets.token_hex(6)}"
        self.concurrency = concurrency or self.default_concurrency
        self.timeout = timeout
        transport = transport or checked_transport(
            allow_private=services.settings.webhook_allow_private)
        # No compressed answers: only the status is read, never the body, and a small
        # gzip body could inflate to hundreds of megabytes in the API's process.
        self.client = httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False,
            trust_env=False, headers={"User-Agent": f"{self.product}/{__version__}",
                                      "Accept-Encoding": "identity"})

    def claim(self, now: float) -> Sequence[P]:
        """Claim the due rows (blocking: run in a thread)."""
        raise NotImplementedError

    async def request(self, post: P) -> tuple[str, bytes] | Content:
        """The POST's Content-Type and body (or a Content, with headers); NotSent (or
        Refused) when there is none."""
        raise NotImplementedError

    def logged(self, post: P, attempt: Attempt) -> None:
        """Count and log the attempt (the URL by its host only: it may carry a secret)."""
        raise NotImplementedError

    async def run_once(self) -> int:
        posts = await asyncio.to_thread(self.claim, self.services.clock.now())
        results = await asyncio.gather(*(self.post(p) for p in posts), return_exceptions=True)
        for post, result in zip(posts, results, strict=True):
            # Recording failed for good (the outage outlasted the claim, or a bug): the
            # lease runs out and this POST is tried again; the others are settled. An
            # outage is in the one outage log line already.
            if isinstance(result, Exception) and not is_unavailable(result):
                log.error("%s %s: could not record the attempt (%s)", self.name, post.row_id,
                          type(result).__name__)
        return len(posts)

    async def close(self) -> None:
        await self.client.aclose()

    async def post(self, post: P) -> None:
        """One POST, settled whatever happens to it: a failure is this row's alone."""
        started = monotonic()
        status, error, final = await self.send(post.url, self.request(post))
        attempt = Attempt(status, error, outcome(status, final, post.attempts),
                          round(monotonic() - started, 3))
        self.logged(post, attempt)
        # Kept through an outage while the claim lasts: a POST its receiver took must not
        # be made again because its settle met no database.
        await written_through_outage(
            lambda: asyncio.to_thread(self._record, post, attempt), where=self.name,
            seconds=post.lease.until - self.services.clock.now())

    async def send(self, url: str, content: Awaitable[tuple[str, bytes] | Content],
                   ) -> tuple[int | None, str, bool]:
        """POST what `content` gives (Content-Type, body) to `url`: the answer's status
        (None: no answer), why it failed, and whether that failure is final."""
        status, error, final = None, "", False
        try:
            made = await content
            if not isinstance(made, Content):
                made = Content(*made)
            async with asyncio.timeout(self.timeout), self.client.stream(
                    "POST", url, content=made.body,
                    headers={**made.headers, "Content-Type": made.type}) as response:
                status = response.status_code  # the body is never read: not needed
        except NotSent as exc:
            error, final = str(exc), exc.final
        except Refused as exc:
            error, final = str(exc), True
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        except TimeoutError:
            error = f"timeout: no complete answer within {self.timeout:g} s"
        except Exception as exc:  # unforeseen: retried on the schedule like any failure
            # the message may quote the URL, which may carry a secret: the type only
            error = f"unexpected error: {type(exc).__name__}"
            log.warning("%s to %s: %s", self.name, host(url), error)
        return status, error, final

    def _record(self, post: P, attempt: Attempt) -> None:
        now = self.services.clock.now()
        attempts = [*post.attempt_log, {"at": now, "status": attempt.status,
                                        "error": attempt.error or None,
                                        "seconds": attempt.seconds}]
        values: dict[str, object] = {"status": attempt.outcome,
                                     "attempt_log": json.dumps(attempts),
                                     "attempts": len(attempts)}
        if attempt.outcome == PENDING:
            values["next_attempt_at"] = now + RETRY_DELAYS[post.attempts]
        else:
            values.update(self.settled_for_good())
        with self.services.db.transaction() as session:
            self.queue.settle(session, [post.row_id], post.lease, now, **values)

    def settled_for_good(self) -> dict[str, object]:
        """What else a row's columns become once it is sent, refused or given up."""
        return {}


def outcome(status: int | None, final: bool, attempts: int) -> str:
    """Where a POST stands after an attempt answered `status` (None: no answer)."""
    if status is not None and 200 <= status < 300:
        return SENT
    if status == 406:
        return REFUSED
    if final or attempts >= len(RETRY_DELAYS):
        return GAVE_UP
    return PENDING


def host(url: str) -> str | None:
    """The URL's host, for logs (the rest of a URL may carry a secret or an address)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
