"""POST queued webhook events, signed, with Mailgun's retry schedule (`webhooks.poster`:
2xx done, 406 stop, anything else retried over about 8 hours). The POSTs are a leased queue
(`storage.leases`), as the deliveries are; claims are shared between the accounts due, so
one account's backlog or slow endpoint doesn't fill every claim.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.events.service import open_payload, with_storage_urls
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.webhooks.models import CANCELLED, PENDING, WebhookDelivery
from mailhaven.webhooks.network import Refused
from mailhaven.webhooks.poster import RETRY_DELAYS, TIMEOUT_SECONDS, Attempt, Poster, host
from mailhaven.webhooks.service import signed_body, signing_key, url_problem

log = logging.getLogger("mailhaven.webhooks")
POSTS = Counter("mailhaven_webhook_posts", "Webhook POST attempts by outcome", ["outcome"])
QUEUE = LeasedQueue(WebhookDelivery, waiting=PENDING)
__all__ = ["RETRY_DELAYS", "TIMEOUT_SECONDS", "WebhookSender"]


@dataclass(frozen=True)
class Post:
    row_id: int  # the webhook delivery
    lease: Lease  # the claim that holds the POST: only it may settle it
    url: str
    webhook: str
    attempts: int
    attempt_log: list[dict[str, Any]]
    document: dict[str, Any]
    key: str


class WebhookSender(Poster[Post]):
    name = "webhooks"
    product = "mailhaven-webhooks"
    queue = QUEUE

    def claim(self, now: float) -> list[Post]:
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

    async def request(self, post: Post) -> tuple[str, bytes]:
        problem = url_problem(post.url)
        if problem:  # stored before URLs were checked at creation: it never will work
            raise Refused(f"{Refused.prefix} invalid URL: {problem}")
        return "application/json", signed_body(post.key, post.document,
                                               self.services.clock.now())

    def logged(self, post: Post, attempt: Attempt) -> None:
        POSTS.labels(attempt.outcome).inc()
        log.info(json.dumps({"kind": "webhook", "delivery": post.row_id,
                             "webhook": post.webhook, "host": host(post.url),
                             "attempt": post.attempts + 1, "status": attempt.status,
                             "error": attempt.error or None, "outcome": attempt.outcome,
                             "seconds": attempt.seconds}))
