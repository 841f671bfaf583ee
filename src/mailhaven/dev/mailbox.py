"""Development mode's capture server: a local MX that keeps what it receives under ./var.

It stands in for the recipients' mail servers, so `make run` shows real, signed mail
without sending anything to the internet.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import dkim
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.dev.message import open_message
from mailhaven.domains.dkim import record_value
from mailhaven.domains.models import ACTIVE_DOMAIN, DkimKey, Domain
from mailhaven.storage.db import Database

DKIM_TAG = re.compile(r"(?:^|;)([a-z]+)=([^;]*)")


@dataclass(frozen=True)
class Captured:
    id: str
    received_at: float
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    to: str
    data: bytes
    sender: str = ""  # the From header


@dataclass(frozen=True)
class DkimResult:
    valid: bool
    domain: str  # the signature's d= and s=, "" when the message is not signed
    selector: str

    @property
    def summary(self) -> str:
        if self.valid:
            return f"valid signature (d={self.domain}, s={self.selector})"
        if not self.domain:
            return "no valid signature: the message is not signed"
        return f"no valid signature: d={self.domain}, s={self.selector} does not verify"


class MailboxHandler:
    def __init__(self, folder: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.folder, self.clock = folder, clock

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "received_at": self.clock.now()}
        await asyncio.to_thread(self._write, data, meta)
        return "250 2.0.0 Captured by the Mailhaven development mailbox"

    def _write(self, data: bytes, meta: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{secrets.token_hex(3)}"
        (self.folder / f"{name}.eml").write_bytes(data)
        (self.folder / f"{name}.json").write_text(json.dumps(meta))


async def start_capture(folder: Path, host: str, port: int,
                        clock: Clock = SYSTEM_CLOCK) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    handler = MailboxHandler(folder, clock)
    return await loop.create_server(
        lambda: SMTP(handler, hostname="mailbox.mailhaven.localhost", loop=loop,
                     decode_data=False), host, port)


def _names(folder: Path) -> list[str]:
    """Newest first: a name starts with the nanosecond it was received."""
    if not folder.exists():
        return []
    return sorted((p.stem for p in folder.glob("*.eml")), reverse=True)


def list_captured(folder: Path, limit: int = 100) -> list[Captured]:
    names = _names(folder)[:limit]
    return [m for m in (read_captured(folder, n) for n in names) if m is not None]


def search_captured(folder: Path, query: str = "", *, offset: int = 0,
                    limit: int = 50) -> tuple[list[Captured], int]:
    """One page of the messages, newest first, whose sender, recipients, subject or text
    body contain `query` (any case); and how many there are in all."""
    names = _names(folder)
    needle = query.strip().casefold()
    if not needle:
        page = [read_captured(folder, n) for n in names[offset:offset + limit]]
        return [m for m in page if m is not None], len(names)
    found = [m for m in (read_captured(folder, n) for n in names)
             if m is not None and needle in _searched(m)]
    return found[offset:offset + limit], len(found)


def _searched(captured: Captured) -> str:
    opened = open_message(captured.data)
    return "\n".join([captured.mail_from, *captured.rcpt_tos, opened.sender, opened.to,
                      opened.subject, opened.text or ""]).casefold()


def read_captured(folder: Path, message_id: str) -> Captured | None:
    if not message_id.replace("-", "").isalnum():
        return None
    eml, meta_file = folder / f"{message_id}.eml", folder / f"{message_id}.json"
    if not eml.exists() or not meta_file.exists():
        return None
    data, meta = eml.read_bytes(), json.loads(meta_file.read_text())
    parsed = message_from_bytes(data, policy=policy.default)
    return Captured(message_id, meta["received_at"], meta["mail_from"], meta["rcpt_tos"],
                    str(parsed.get("Subject", "")), str(parsed.get("To", "")), data,
                    str(parsed.get("From", "")))


def verify_dkim(db: Database, data: bytes) -> bool:
    """Check the (topmost) signature against the keys our own domain table publishes."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:  # noqa: ARG001 (dkimpy passes it)
        selector, _, rest = name.decode().rstrip(".").partition("._domainkey.")
        with db.sessions() as session:
            key = session.scalar(select(DkimKey).join(Domain).where(  # the verified copy first
                Domain.name == rest, DkimKey.selector == selector)
                .order_by(Domain.state != ACTIVE_DOMAIN).limit(1))
        return record_value(key.algorithm, key.public_key).encode() if key else b""

    try:
        return bool(dkim.verify(data, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def dkim_result(db: Database, data: bytes) -> DkimResult:
    """What `verify_dkim` says, with the domain and selector of the signature it checked."""
    header = message_from_bytes(data, policy=policy.compat32).get("DKIM-Signature", "")
    tags = dict(DKIM_TAG.findall(re.sub(r"\s+", "", str(header))))
    return DkimResult(bool(header) and verify_dkim(db, data), tags.get("d", ""),
                      tags.get("s", ""))

