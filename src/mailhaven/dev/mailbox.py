"""Development mode's capture server: a local MX that keeps what it receives under ./var.

It stands in for the recipients' mail servers, so `make run` shows real, signed mail
without sending anything to the internet.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import dkim
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.domains.dkim import record_value
from mailhaven.domains.models import ACTIVE_DOMAIN, DkimKey, Domain
from mailhaven.storage.db import Database


@dataclass(frozen=True)
class Captured:
    id: str
    received_at: float
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    to: str
    data: bytes


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


def list_captured(folder: Path, limit: int = 100) -> list[Captured]:
    if not folder.exists():
        return []
    names = sorted((p.stem for p in folder.glob("*.eml")), reverse=True)[:limit]
    return [m for m in (read_captured(folder, n) for n in names) if m is not None]


def read_captured(folder: Path, message_id: str) -> Captured | None:
    if not message_id.replace("-", "").isalnum():
        return None
    eml, meta_file = folder / f"{message_id}.eml", folder / f"{message_id}.json"
    if not eml.exists() or not meta_file.exists():
        return None
    data, meta = eml.read_bytes(), json.loads(meta_file.read_text())
    parsed = message_from_bytes(data, policy=policy.default)
    return Captured(message_id, meta["received_at"], meta["mail_from"], meta["rcpt_tos"],
                    str(parsed.get("Subject", "")), str(parsed.get("To", "")), data)


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
