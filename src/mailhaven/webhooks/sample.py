"""A sample event POSTed to a webhook URL on request ("send a test"): signed with the
account's key and sent by the same poster as the real events, answered at once."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from mailhaven.clock import monotonic
from mailhaven.services import Services
from mailhaven.webhooks.poster import host
from mailhaven.webhooks.sender import WebhookSender
from mailhaven.webhooks.service import signed_body, signing_key, valid_names, valid_url

SAMPLE_RECIPIENT = "alice@example.com"  # RFC 2606's example domain: nobody's address


@dataclass(frozen=True)
class Tried:
    """What the test POST came to."""

    host: str
    status: int | None
    error: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def sample_event(name: str, domain_name: str, now: float) -> dict:
    """An event of webhook type `name` in Mailgun's shape, marked as a test."""
    event, severity = (("failed", name.removesuffix("_fail")) if name.endswith("_fail")
                       else (name, None))
    document: dict = {
        "id": secrets.token_urlsafe(16), "event": event, "timestamp": now,
        "log-level": "error" if severity else "info", "recipient": SAMPLE_RECIPIENT,
        "recipient-domain": SAMPLE_RECIPIENT.rpartition("@")[2], "tags": ["test"],
        "user-variables": {}, "flags": {"is-test-mode": True},
        "message": {"headers": {"to": SAMPLE_RECIPIENT, "from": f"test@{domain_name}",
                                "subject": "Mailhaven webhook test",
                                "message-id": f"test.{secrets.token_hex(8)}@{domain_name}"}}}
    if severity:
        document["severity"] = severity
        document["reason"] = "generic"
    return document


async def send_test(services: Services, account_id: str, domain_name: str, name: str,
                    url: str) -> Tried:
    """POST a signed sample `name` event to `url` now (BadRequest for a bad type or URL)."""
    valid_names([name])
    url = valid_url(url)

    def key() -> str:
        with services.db.transaction() as session:  # made on first use
            return signing_key(session, services.vault, account_id)

    signing = await asyncio.to_thread(key)

    async def content() -> tuple[str, bytes]:
        now = services.clock.now()
        return "application/json", signed_body(signing, sample_event(name, domain_name, now),
                                               now)

    sender = WebhookSender(services, concurrency=1)
    started = monotonic()
    try:
        status, error, _ = await sender.send(url, content())
    finally:
        await sender.close()
    return Tried(host(url) or "", status, error, round(monotonic() - started, 3))
