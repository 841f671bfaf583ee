"""The MX on a loopback port of its own, in a thread with its own event loop, as `serve`
runs it (the return-path handler included), resolving through a loopback DNS server."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailhaven.feedback.listener import FeedbackHandler
from mailhaven.inbound.listener import start_mx
from mailhaven.inbound.models import InboundMessage
from mailhaven.inbound.processor import InboundProcessor
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.services import Services
from tests.delivery.sinks import DnsServer


class RunningMx:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RunningMx:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            start_mx(self.services, "127.0.0.1", 0, sock=sock,
                     return_paths=FeedbackHandler(self.services)), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.aclose(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.sender.test",
                            timeout=60)

    def send(self, mail_from: str, rcpts: list[str], message: bytes | str) -> dict:
        with self.client() as client:
            return client.sendmail(mail_from, rcpts, message)


def with_nameserver(services: Services, dns_server: DnsServer, **changes: object) -> Services:
    return dataclasses.replace(services, settings=services.settings.with_(
        dns_nameserver=dns_server.address, **changes))


@pytest.fixture
def zone() -> dict[str, dict[str, list[str]]]:
    return {}


@pytest.fixture
def dns_server(zone: dict[str, dict[str, list[str]]]) -> Iterator[DnsServer]:
    with DnsServer(zone) as server:
        yield server


@pytest.fixture
def mx(services: Services, dns_server: DnsServer, domain: str) -> Iterator[RunningMx]:
    with RunningMx(with_nameserver(services, dns_server)) as running:
        yield running


def message(sender: str = "Ann Sender <ann@sender.test>", to: str = "support@mg.acme.test",
            subject: str = "Order 42", body: str = "Where is my parcel?\n",
            message_id: str | None = "<m42@sender.test>") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg.as_bytes(policy=policy.SMTP)


def rows(services: Services) -> list[InboundMessage]:
    with services.db.sessions() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def stored_mime(services: Services, storage_key: str) -> bytes:
    """The raw MIME as stored (what store() and forwards read), opened through the vault."""
    with services.db.sessions() as session:
        row = session.get(Message, storage_key)
        assert row is not None and row.content_sealed is not None and row.kind == "inbound"
        key = services.vault.keys(session, [row.content_key_id])[row.content_key_id or ""]
        document = Document.load(services.vault.open(key, row.content_sealed,
                                                     f"message:{row.id}"))
    return base64.b64decode(document.mime or "")


def parsed(raw: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(raw, policy=policy.default)


def process_all(services: Services, owner: str | None = None) -> int:
    processor = InboundProcessor(services, owner=owner)
    total = 0
    while handled := processor.process_due():
        total += handled
    return total
