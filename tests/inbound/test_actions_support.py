"""Helpers for the route-action tests (no tests here): an inbound message stored as the
MX stores it (the contract's shape: a `messages` row of kind "inbound", sealed under a
fresh content key, its Document's `mime` the raw message with our trace fields on top),
and `dispatch` run in a transaction as the processor runs it."""

from __future__ import annotations

import asyncio
import base64
from email.message import EmailMessage
from email.utils import parseaddr

import httpx

from mailhaven.domains.service import owned_domain
from mailhaven.inbound.actions import dispatch
from mailhaven.inbound.posts import RoutePostSender
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.routes.expressions import RouteAction
from mailhaven.services import Services
from mailhaven.storage.base import new_id

MAILFROM = "bounces-77@shop.example.org"


def a_message(*, subject: str = "Order 77", text: str = "Where is my parcel?\n",
              attachment: bytes | None = None, html: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Buyer <ann@shop.example.org>"
    msg["To"] = "support@mg.acme.test"
    msg["Subject"] = subject
    msg["Message-ID"] = "<order-77@shop.example.org>"
    msg["Date"] = "Sat, 05 Dec 2026 10:00:00 +0000"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment, "application", "pdf", filename="invoice.pdf")
    return msg.as_bytes()


def store_inbound(services: Services, account_id: str, domain: str, raw: bytes, *,
                  to: list[str], mailfrom: str = MAILFROM) -> str:
    """The message as intake keeps it; its storage key."""
    trace = (f"Received: from mail.shop.example.org by mx.mailhaven.test with ESMTPS\r\n"
             f"Authentication-Results: mx.mailhaven.test; spf=pass "
             f"smtp.mailfrom={mailfrom.rpartition('@')[2] or 'none'}\r\n"
             f"X-Envelope-From: <{mailfrom}>\r\n").encode()
    now = services.clock.now()
    with services.db.transaction() as session:
        owned = owned_domain(session, account_id, domain, with_keys=False)
        key = services.vault.new_content_key(session, account_id)
        storage_key = new_id()
        doc = Document(message_id="order-77@shop.example.org", created_at=now,
                       sender="Ann Buyer <ann@shop.example.org>", to=to, cc=[],
                       subject="Order 77", text=None, html=None, amp_html=None, headers=[],
                       variables={}, batch=False,
                       mime=base64.b64encode(trace + raw).decode(), method="smtp")
        session.add(Message(id=storage_key, account_id=account_id, domain_id=owned.id,
                            kind="inbound", size=len(raw), created_at=now,
                            content_key_id=key.id,
                            content_sealed=services.vault.seal(key, doc.dump(),
                                                               f"message:{storage_key}")))
    return storage_key


def run_actions(services: Services, storage_key: str, recipient: str,
                actions: list[RouteAction]) -> None:
    with services.db.transaction() as session:
        message = session.get(Message, storage_key)
        assert message is not None
        dispatch(session, services.vault, services.settings, message=message,
                 recipient=recipient, actions=actions, now=services.clock.now())


def send_route_posts(services: Services, transport: httpx.AsyncBaseTransport | None = None,
                     ) -> int:
    """Run one RoutePostSender until nothing is due now; how many POSTs it made."""
    async def run() -> int:
        sender = RoutePostSender(services, transport=transport)
        total = 0
        try:
            while handled := await sender.run_once():
                total += handled
        finally:
            await sender.close()
        return total
    return asyncio.run(run())


def address_of(value: str) -> str:
    return parseaddr(value)[1]
