"""Sending the Article 19 notifications: a leased queue POSTed by `webhooks.poster`
(Mailgun's retry schedule, a 406 stops, private targets refused unless allowed), each
signed with the receiving party's own key (a disclosure's, region vault, or a
sub-processor's, the main database's vault) over timestamp, token and the body itself, in
headers: Mailgun's signature covers timestamp + token only, so a captured one could be
attached to a forged body."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mailhaven.clock import iso8601
from mailhaven.disclosures.models import (
    PENDING,
    SIGNING_LABEL,
    SUBJECT_LABEL,
    Disclosure,
    Notification,
)
from mailhaven.disclosures.register import Subprocessor, signing_key
from mailhaven.disclosures.service import endpoint_problem
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.webhooks.network import Refused
from mailhaven.webhooks.poster import (
    Attempt,
    Content,
    NotSent,
    Poster,
    host,
)
from mailhaven.webhooks.service import url_problem

log = logging.getLogger("mailhaven.disclosures")
QUEUE = LeasedQueue(Notification, waiting=PENDING)


@dataclass(frozen=True)
class Post:
    row_id: int
    lease: Lease
    url: str
    attempts: int
    attempt_log: list[dict[str, Any]]
    document: dict[str, Any]
    key: str | None


TIMESTAMP_HEADER = "X-Mailhaven-Timestamp"
TOKEN_HEADER = "X-Mailhaven-Token"  # noqa: S105 - a header name, not a secret
SIGNATURE_HEADER = "X-Mailhaven-Signature"


def body_signature(key: str, timestamp: str, token: str, body: bytes) -> str:
    """Hex HMAC-SHA256, with the party's key, of timestamp + token + the hex SHA-256 of
    the raw body: a signature fits one body only (docs/privacy.md has the recipe)."""
    message = timestamp + token + hashlib.sha256(body).hexdigest()
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_body(key: str, timestamp: str, token: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(body_signature(key, timestamp, token, body), signature)


def signed(key: str, document: dict[str, Any], now: float) -> Content:
    """The document as JSON, with the signature of it in headers."""
    body = json.dumps(document).encode()
    timestamp, token = str(int(now)), secrets.token_hex(25)
    return Content("application/json", body, {
        TIMESTAMP_HEADER: timestamp, TOKEN_HEADER: token,
        SIGNATURE_HEADER: body_signature(key, timestamp, token, body)})


class NotificationSender(Poster[Post]):
    name = "article19"
    product = "mailhaven-article19"
    queue = QUEUE
    default_concurrency = 10

    def claim(self, now: float) -> list[Post]:
        db = self.services.db
        with db.transaction() as session:
            lease, ids = QUEUE.claim(session, owner=self.owner, now=now, limit=self.concurrency,
                                     lease_seconds=self.services.settings.webhook_lease_seconds)
            if not ids:
                return []
            rows = session.scalars(select(Notification).where(Notification.id.in_(ids))).all()
            keys = self._disclosure_keys(session, [r.party_id for r in rows
                                                   if r.party_kind == "disclosure"])
            session.expunge_all()
        keys.update(self._subprocessor_keys([r.party_id for r in rows
                                             if r.party_kind == "subprocessor"]))
        vault = self.services.vault
        return [Post(r.id, lease, r.url, r.attempts, json.loads(r.attempt_log), {
            "event": r.event, "subject": {"sha256": vault.open_secret(
                SUBJECT_LABEL, r.subject_sealed).decode() if r.subject_sealed else None},
            "account": r.account_id, "request_id": r.request_id,
            "at": iso8601(r.created_at)}, keys.get(r.party_id) if r.subject_sealed else None)
            for r in rows]

    def _disclosure_keys(self, session: Any, ids: list[str]) -> dict[str, str]:
        vault = self.services.vault
        return {d.id: vault.open_secret(SIGNING_LABEL, d.signing_key_sealed).decode()
                for d in session.scalars(select(Disclosure).where(Disclosure.id.in_(ids)))
                if d.signing_key_sealed is not None}

    def _subprocessor_keys(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        platform = getattr(self.services, "platform", None)
        vault = platform.directory_vault if platform is not None else self.services.vault
        with self.services.main_db.sessions() as session:
            found = {}
            for s in session.scalars(select(Subprocessor).where(Subprocessor.id.in_(ids))):
                key = signing_key(vault, s)
                if key is not None:
                    found[s.id] = key
            return found

    async def request(self, post: Post) -> Content:
        problem = url_problem(post.url) or endpoint_problem(
            post.url, allow_http=self.services.settings.webhook_allow_private)
        if problem:
            raise Refused(f"{Refused.prefix} invalid URL: {problem}")
        if post.key is None:
            raise NotSent("the party has no signing key (or the subject is gone)", final=True)
        return signed(post.key, post.document, self.services.clock.now())

    def logged(self, post: Post, attempt: Attempt) -> None:
        log.info(json.dumps({"kind": "article19", "notification": post.row_id,
                             "host": host(post.url), "attempt": post.attempts + 1,
                             "status": attempt.status, "error": attempt.error or None,
                             "outcome": attempt.outcome, "seconds": attempt.seconds}))

    def settled_for_good(self) -> dict[str, object]:
        """The subject's hash goes once a notification is settled: it was needed only to send."""
        return {"subject_sealed": None}
