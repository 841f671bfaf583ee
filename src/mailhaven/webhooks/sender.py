"""POST queued webhook events, signed, with Mailgun's retry schedule.

A 2xx is success; a 406 means "stop" (Mailgun's rule); anything else, a timeout or a refused
connection is retried after 10m, 10m, 15m, 30m, 1h, 2h and 4h (about 8 hours), then given
up; a URL that can't work or a non-public target is given up at once. Each POST is settled on
its own: one that fails never holds up the others. The POSTs are a leased queue
(`storage.leases`), as the deliveries are: a sender that dies lets its leases run out; and
claims are shared between the accounts due, so one account's backlog or slow endpoint doesn't
fill every claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven import __version__
from mailhaven.clock import monotonic
from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.events.service import open_payload, with_storage_urls
from mailhaven.runner import Runner
from mailhaven.services import Services
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.webhooks.models import (
    CANCELLED,
    GAVE_UP,
    PENDING,
    REFUSED,
    SENT,
    WebhookDelivery,
)
from mailhaven.webhooks.network import Refused, checked_transport
from mailhaven.webhooks.service import signed_body, signing_key, url_problem

log = logging.getLogger("mailhaven.webhooks")
POSTS = Counter("mailhaven_webhook_posts", "Webhook POST attempts by outcome", ["outcome"])

RETRY_DELAYS = (600, 600, 900, 1800, 3600, 7200, 14400)
TIMEOUT_SECONDS = 10.0  # for the whole POST, not per read: a dripped answer is cut too
QUEUE = LeasedQueue(WebhookDelivery, waiting=PENDING)


@dataclass(frozen=True)
class Post:
    delivery_id: int
    lease: Lease  # the claim that holds the POST: only it may settle it
    url: str
    webhook: str
    attempts: int
    attempt_log: list
    document: dict
    key: str


class WebhookSender(Runner):
    name = "webhooks"
    idle_seconds = 1.0

    def __init__(self, services: Services, *, owner: str | None = None,
                 concurrency: int = 20, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.services = services
        self.owner = owner or f"webhooks-{secrets.token_hex(6)}"
        self.concurrency = concurrency
        self.timeout = timeout
        transport = transport or checked_transport(
            allow_private=services.settings.webhook_allow_private)
        # No compressed answers: only the status is read, never the body, and a small
        # gzip body could inflate to hundreds of megabytes in the API's process.
        self.client = httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False,
            trust_env=False, headers={"User-Agent": f"mailhaven-webhooks/{__version__}",
                                      "Accept-Encoding": "identity"})

    async def run_once(self) -> int:
        now = self.services.clock.now()
        posts = await asyncio.to_thread(self._claim, now)
        results = await asyncio.gather(*(self._post(p) for p in posts), return_exceptions=True)
        for post, result in zip(posts, results, strict=True):
            if isinstance(result, Exception):  # recording failed (the database?): the lease
                # runs out and this POST is tried again; the others are settled
                log.error("webhook %s: could not record the attempt (%s)", post.delivery_id,
                          type(result).__name__)
        return len(posts)

    async def close(self) -> None:
        await self.client.aclose()

    # -- claim --------------------------------------------------------------------------
    def _claim(self, now: float) -> list[Post]:
        db = self.services.db
        with db.transaction() as session:
            lease, ids = QUEUE.claim(session, owner=self.owner, now=now, limit=self.concurrency,
                                     lease_seconds=self.services.settings.webhook_lease_seconds)
            if not ids:
                return []
            # Made here, in a write transaction, if the account has none yet.
            keys = {account_id: signing_key(session, self.services.vault, account_id)
                    for account_id in set(session.scalars(
                        select(WebhookDelivery.account_id)
                        .where(WebhookDelivery.id.in_(ids))))}
        with db.sessions() as session:
            posts, unreadable = self._posts(session, ids, keys, lease)
        if unreadable:  # the event is gone or its recipient erased: nothing left to send
            with db.transaction() as session:
                QUEUE.settle(session, unreadable, lease, now, status=CANCELLED)
        return posts

    def _posts(self, session: Session, ids: list[int], keys: dict[str, str],
               lease: Lease) -> tuple[list[Post], list[int]]:
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))).all()
        events = session.scalars(select(Event).where(
            Event.event_id.in_({r.event_id for r in rows}))).all()
        names = dict(session.execute(select(Domain.id, Domain.name).where(
            Domain.id.in_({r.domain_id for r in rows}))).all())
        documents = {d["id"]: d for d in open_payload(session, self.services.vault, list(events))}
        domain_of = {e.event_id: names.get(e.domain_id, "") for e in events}
        for doc in documents.values():
            with_storage_urls([doc], self.services.settings.api_url, domain_of[doc["id"]])
        posts, unreadable = [], []
        for row in rows:
            document = documents.get(row.event_id)
            if document is None:
                unreadable.append(row.id)
                continue
            posts.append(Post(row.id, lease, row.url, row.webhook, row.attempts,
                              json.loads(row.attempt_log), document, keys[row.account_id]))
        return posts, unreadable

    # -- post ---------------------------------------------------------------------------
    async def _post(self, post: Post) -> None:
        """One POST, settled whatever happens to it: a failure is this row's alone."""
        started = monotonic()
        status_code, error = None, ""
        try:
            problem = url_problem(post.url)
            if problem:  # stored before URLs were checked at creation: it never will work
                raise Refused(f"{Refused.prefix} invalid URL: {problem}")
            now = self.services.clock.now()
            async with asyncio.timeout(self.timeout), self.client.stream(
                    "POST", post.url, content=signed_body(post.key, post.document, now),
                    headers={"Content-Type": "application/json"}) as response:
                status_code = response.status_code  # the body is never read: not needed
        except Refused as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        except TimeoutError:
            error = f"timeout: no complete answer within {self.timeout:g} s"
        except Exception as exc:  # unforeseen: retried on the schedule like any failure
            # the message may quote the URL, which may carry a secret: the type only
            error = f"unexpected error: {type(exc).__name__}"
            log.warning("webhook %s: %s", post.delivery_id, error)
        seconds = round(monotonic() - started, 3)
        outcome = self._outcome(post, status_code, error)
        POSTS.labels(outcome).inc()
        log.info(json.dumps({"kind": "webhook", "delivery": post.delivery_id,
                             "webhook": post.webhook, "host": _host(post.url),
                             "attempt": post.attempts + 1, "status": status_code,
                             "error": error or None, "outcome": outcome,
                             "seconds": seconds}))
        now = self.services.clock.now()
        entry = {"at": now, "status": status_code, "error": error or None, "seconds": seconds}
        next_at = (now + RETRY_DELAYS[post.attempts] if outcome == PENDING else None)
        await asyncio.to_thread(self._record, post, now, outcome, next_at, entry)

    @staticmethod
    def _outcome(post: Post, status_code: int | None, error: str) -> str:
        if status_code is not None and 200 <= status_code < 300:
            return SENT
        if status_code == 406:
            return REFUSED
        if error.startswith(Refused.prefix) or post.attempts >= len(RETRY_DELAYS):
            return GAVE_UP
        return PENDING

    def _record(self, post: Post, now: float, outcome: str, next_at: float | None,
                entry: dict) -> None:
        attempts = [*post.attempt_log, entry]
        values: dict[str, object] = {"status": outcome, "attempt_log": json.dumps(attempts),
                                     "attempts": len(attempts)}
        if next_at is not None:
            values["next_attempt_at"] = next_at
        with self.services.db.transaction() as session:
            QUEUE.settle(session, [post.delivery_id], post.lease, now, **values)


def _host(url: str) -> str | None:
    """The URL's host, for logs (the rest of a URL may carry a secret)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
