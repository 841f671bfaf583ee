"""The route-POST queue: forward("https://…") and store(notify="https://…") POSTs, signed,
with Mailgun's retry schedule.

As webhooks (`webhooks.sender`): 2xx is done, 406 means "stop", anything else (a timeout, a
refused connection) is retried after 10m, 10m, 15m, 30m, 1h, 2h and 4h (about 8 hours),
then given up; a target that resolves to a non-public address is given up at once unless
private targets are allowed. The body is built from the sealed message when the POST is
claimed, so a message or a recipient erased meanwhile is never sent (the row is
cancelled); it is built in a rendering process within BUILD_SECONDS (a hostile message
can't stall the API and the MX, which share this process): one that takes longer counts
as a failed attempt, and ends given up like any. Every attempt is kept in the row's
attempt log, readable through `GET /v1/admin/domains/{d}/route_posts`, and written as
one JSON log line (host only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.errors import NotFound
from mailhaven.inbound import payload
from mailhaven.inbound.models import RoutePost
from mailhaven.messages.mime import mime_fields, mime_head
from mailhaven.messages.models import Message
from mailhaven.messages.renderer import RenderCrashed, RenderTimeout, RenderUnavailable
from mailhaven.sending.stored import stored_document
from mailhaven.services import Services
from mailhaven.storage.base import table
from mailhaven.storage.db import affected
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.vault import Vault
from mailhaven.webhooks.models import CANCELLED, PENDING
from mailhaven.webhooks.network import Refused
from mailhaven.webhooks.poster import TIMEOUT_SECONDS, Attempt, NotSent, Poster, host
from mailhaven.webhooks.service import MAX_URL_CHARS, signing_key

log = logging.getLogger("mailhaven.inbound.posts")
POSTS = Counter("mailhaven_route_posts", "Route POST attempts by outcome", ["outcome"])
QUEUE = LeasedQueue(RoutePost, waiting=PENDING)
RECIPIENT_CONTEXT, URL_CONTEXT = "route_post.recipient", "route_post.url"
UNBUILDABLE = "the message could not be parsed into a POST"
CONCURRENCY = 8  # a POST may carry a 25 MB message: fewer at once than webhooks
# A body is built within this (8 of them, two rendering processes: within the 60 s lease).
BUILD_SECONDS = 10.0


def target_problem(url: str) -> str | None:
    """Why `url` can't be POSTed to (None if it can). Unlike a webhook URL it may hold an
    address (a route's captures): it is sealed, never kept in clear."""
    if len(url) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "spaces and control characters are not allowed"
    try:
        parts = urlsplit(url)
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "it can't be parsed"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL with a host"
    return None


def enqueue(session: Session, vault: Vault, *, message: Message, recipient: str,
            route_id: str, kind: str, url: str, now: float) -> None:
    """Queue one POST of `message` for `recipient` to `url` (sealed under the recipient's
    key), in the caller's transaction."""
    key = vault.subject(session, message.account_id, recipient)
    session.execute(table(RoutePost).insert(), [{
        "account_id": message.account_id, "domain_id": message.domain_id,
        "storage_key": message.id, "route_id": route_id, "kind": kind,
        "subject_key_id": key.id,
        "recipient_sealed": vault.seal_text(key, recipient, RECIPIENT_CONTEXT),
        "url_sealed": vault.seal_text(key, url, URL_CONTEXT),
        "status": PENDING, "attempts": 0, "attempt_log": "[]", "next_attempt_at": now,
        "created_at": now, "updated_at": now}])


def envelope_sender(raw: bytes) -> str:
    """The envelope sender (MAIL FROM) of a received message, as the MX wrote it into the
    X-Envelope-From it prepends (the first one: a message's own comes after ours); else the
    From address. "" for a bounce."""
    fields = mime_fields(mime_head(raw))
    for name, value in fields:
        if name == "x-envelope-from":
            return parseaddr(value)[1] if value.strip() not in ("", "<>") else ""
    from_ = next((v for n, v in fields if n == "from"), "")
    return parseaddr(from_)[1]


@dataclass(frozen=True)
class Post:
    row_id: int  # the route POST
    lease: Lease  # the claim that holds the POST: only it may settle it
    url: str
    kind: str
    route_id: str
    attempts: int
    attempt_log: list[dict[str, Any]]
    account_id: str
    key: str  # the account's webhook signing key
    raw: bytes
    recipient: str
    domain: str
    message_url: str


class RoutePostSender(Poster[Post]):
    name = "route-posts"
    product = "mailhaven-routes"
    queue = QUEUE

    def __init__(self, services: Services, *, owner: str | None = None,
                 concurrency: int = CONCURRENCY,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = TIMEOUT_SECONDS,
                 build_seconds: float = BUILD_SECONDS) -> None:
        super().__init__(services, owner=owner, concurrency=concurrency,
                         transport=transport, timeout=timeout)
        self.build_seconds = build_seconds

    def claim(self, now: float) -> list[Post]:
        db = self.services.db
        with db.transaction() as session:
            lease, ids = QUEUE.claim(session, owner=self.owner, now=now, limit=self.concurrency,
                                     lease_seconds=self.services.settings.webhook_lease_seconds)
            if not ids:
                return []
            keys = {account_id: signing_key(session, self.services.vault, account_id)
                    for account_id in set(session.scalars(
                        select(RoutePost.account_id).where(RoutePost.id.in_(ids))))}
        with db.sessions() as session:
            posts, unreadable = self._posts(session, ids, keys, lease)
        if unreadable:
            with db.transaction() as session:
                # the message is gone or its recipient erased: nothing left to send
                QUEUE.settle(session, unreadable, lease, now, status=CANCELLED)
        return posts

    def _posts(self, session: Session, ids: list[int], keys: dict[str, str],
               lease: Lease) -> tuple[list[Post], list[int]]:
        vault, api_url = self.services.vault, self.services.settings.api_url.rstrip("/")
        rows = session.scalars(select(RoutePost).where(RoutePost.id.in_(ids))).all()
        names = dict(session.execute(select(Domain.id, Domain.name).where(
            Domain.id.in_({r.domain_id for r in rows}))).all())
        subject_keys = vault.keys(session, (r.subject_key_id for r in rows))
        posts: list[Post] = []
        unreadable: list[int] = []
        for row in rows:
            key = subject_keys.get(row.subject_key_id or "")
            try:
                if key is None:
                    raise NotFound("the recipient's key is erased")
                doc = stored_document(session, vault, row.domain_id, row.storage_key)
            except NotFound:
                unreadable.append(row.id)
                continue
            recipient = vault.open_text(key, row.recipient_sealed, RECIPIENT_CONTEXT)
            url = vault.open_text(key, row.url_sealed, URL_CONTEXT)
            domain = names.get(row.domain_id, "")
            posts.append(Post(row.id, lease, url, row.kind, row.route_id, row.attempts,
                              json.loads(row.attempt_log), row.account_id,
                              keys[row.account_id], doc.mime_bytes, recipient, domain,
                              f"{api_url}/v3/domains/{domain}/messages/{row.storage_key}"))
        return posts, unreadable

    async def _build(self, post: Post) -> tuple[str, bytes]:
        """The POST's (Content-Type, body), built in a rendering process within
        `build_seconds`."""
        return await self.services.renderer.run(
            post.account_id, self.build_seconds, payload.post_body,
            post.kind, post.raw, post.recipient,
            envelope_sender(post.raw), post.url, post.domain, post.message_url, post.key,
            self.services.clock.now())

    async def request(self, post: Post) -> tuple[str, bytes]:
        problem = target_problem(post.url)
        if problem:
            raise Refused(f"{Refused.prefix} invalid URL: {problem}")
        try:
            return await self._build(post)
        except (RenderTimeout, RenderCrashed, RenderUnavailable) as exc:
            # too slow (or the process died): an attempt, retried on the schedule
            raise NotSent(f"the POST could not be built: {exc}", final=False) from exc
        except Exception as exc:  # a message the parser can't take: the same each time
            log.error("route post %s: %s (%s)", post.row_id, UNBUILDABLE, type(exc).__name__)
            raise NotSent(UNBUILDABLE, final=True) from exc

    def logged(self, post: Post, attempt: Attempt) -> None:
        POSTS.labels(attempt.outcome).inc()
        log.info(json.dumps({"kind": "route-post", "post": post.row_id,
                             "route": post.route_id, "action": post.kind,
                             "host": host(post.url), "attempt": post.attempts + 1,
                             "status": attempt.status, "error": attempt.error or None,
                             "outcome": attempt.outcome, "seconds": attempt.seconds}))


def recent_posts(session: Session, vault: Vault, account_id: str, domain_id: str, *,
                 limit: int, status: str | None = None) -> list[dict[str, Any]]:
    """What happened to a domain's recent route POSTs, newest first, every attempt: how a
    customer sees a forward that fails. One whose recipient was erased is left out."""
    query = (select(RoutePost).where(RoutePost.account_id == account_id,
                                     RoutePost.domain_id == domain_id)
             .order_by(RoutePost.id.desc()).limit(limit))
    if status:
        query = query.where(RoutePost.status == status)
    rows = session.scalars(query).all()
    keys = vault.keys(session, (r.subject_key_id for r in rows))
    items = []
    for row in rows:
        key = keys.get(row.subject_key_id or "")
        if key is None:
            continue
        items.append({
            "id": row.id, "route-id": row.route_id, "action": row.kind,
            "storage-key": row.storage_key,
            "recipient": vault.open_text(key, row.recipient_sealed, RECIPIENT_CONTEXT),
            "url": vault.open_text(key, row.url_sealed, URL_CONTEXT), "status": row.status,
            "attempts": json.loads(row.attempt_log),
            "next-attempt-at": row.next_attempt_at if row.status == PENDING else None,
            "created-at": row.created_at})
    return items


def erase_for_messages(session: Session, account_id: str, storage_keys: Iterable[str]) -> int:
    """Delete the account's route POSTs of these messages (erasure: the mail a subject sent
    or received goes, and with it what was posted of it, to whom and where); how many."""
    keys, deleted = sorted(set(storage_keys)), 0
    for start in range(0, len(keys), 500):  # within every database's bound parameters
        deleted += affected(session.execute(delete(RoutePost).where(
            RoutePost.account_id == account_id,
            RoutePost.storage_key.in_(keys[start:start + 500]))
            .execution_options(synchronize_session=False)))
    return deleted

