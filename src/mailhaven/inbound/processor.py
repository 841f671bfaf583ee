"""Process received mail from its durable queue: for each (message, recipient), in one
transaction, list distribution, the account's routes and their actions, and the `accepted`
event (method "smtp"). A processor that dies lets its leases run out and another takes the
rows again; a failure is retried with backoff, and a row that can never be processed ends
`failed`, its error type kept for the operator. A database outage is no failure of the
row's: the rows claimed are processed once the database is back, while their lease lasts."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.events.service import Recipient, record
from mailhaven.inbound.actions import dispatch
from mailhaven.inbound.distribution import distribute
from mailhaven.inbound.models import FAILED, PROCESSED, InboundMessage
from mailhaven.inbound.service import QUEUE
from mailhaven.messages import content
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.routes.service import matching_actions
from mailhaven.runner import Doorbell, Runner
from mailhaven.services import Services
from mailhaven.storage.db import is_unavailable
from mailhaven.storage.leases import Lease
from mailhaven.storage.outcomes import written_through_outage

log = logging.getLogger("mailhaven.inbound")
PROCESSED_TOTAL = Counter("mailhaven_inbound_processed_total",
                          "Received messages processed, per recipient, by outcome", ["outcome"])

RETRY_DELAYS = (30, 60, 300, 900, 1800, 3600, 7200, 14400)  # then failed (about 8 hours)
LEASE_SECONDS = 120.0


class Unprocessable(Exception):
    """The row can never be processed (its body or recipient was erased or expired)."""


class LeaseLost(Exception):
    """Another claim took the row while this one worked on it."""


class InboundProcessor(Runner):
    """The runner of the inbound queue (`inbound_messages`), in `serve` and `worker`."""

    name = "inbound"
    idle_seconds = 1.0

    def __init__(self, services: Services, *, owner: str | None = None, batch: int = 20,
                 doorbell: Doorbell | None = None) -> None:
        self.services = services
        self.owner = owner or f"inbound-{secrets.token_hex(6)}"
        self.batch = batch
        self.doorbell = doorbell
        # A message's header fields, by storage key, read once per claim for all its
        # recipients (emptied at each claim: the memory of one batch).
        self._headers: dict[str, list[tuple[str, str]]] = {}

    async def run_once(self) -> int:
        lease, ids = await asyncio.to_thread(self.claim)
        left = list(ids)
        # A database outage stops the round, not the claim: the rows still held are
        # processed when the database is back, without waiting out their lease.
        await written_through_outage(
            lambda: asyncio.to_thread(self._process_each, left, lease), where=self.name,
            seconds=lease.until - self.services.clock.now())
        return len(ids)

    def process_due(self) -> int:
        """Claim the due rows and process each in its own transaction (blocking)."""
        lease, ids = self.claim()
        self._process_each(list(ids), lease)
        return len(ids)

    def claim(self) -> tuple[Lease, list[int]]:
        self._headers = {}
        with self.services.db.transaction() as session:
            return QUEUE.claim(session, owner=self.owner, now=self.services.clock.now(),
                               limit=self.batch, lease_seconds=LEASE_SECONDS)

    def _process_each(self, left: list[int], lease: Lease) -> None:
        """Process the rows of `left`, taking each off once it is done: an outage raised
        here leaves the rest to be offered again."""
        while left:
            self._one(left[0], lease)
            del left[0]
        self._headers = {}

    def _one(self, row_id: int, lease: Lease) -> None:
        db, clock = self.services.db, self.services.clock
        try:
            with db.transaction() as session:
                outcome = self._process(session, row_id, lease, clock.now())
        except LeaseLost:
            outcome = "lost"
        except Exception as exc:
            if is_unavailable(exc):  # not the row's failure: it is processed when it's back
                raise
            outcome = self._failed(row_id, lease, exc)
        PROCESSED_TOTAL.labels(outcome).inc()
        log.info(json.dumps({"kind": "inbound", "row": row_id, "outcome": outcome}))

    def _process(self, session: Session, row_id: int, lease: Lease, now: float) -> str:
        services = self.services
        vault = services.vault
        # Locked (PostgreSQL): a claim meanwhile skips it, so nobody else processes it too.
        row = session.get(InboundMessage, row_id, with_for_update=True)
        if row is None or row.lease_owner != lease.owner or row.next_attempt_at != lease.until:
            return "lost"  # erased meanwhile, or another claim has it now
        message = session.get(Message, row.message_id)
        domain = session.get(Domain, row.domain_id)
        keys = vault.keys(session, [row.recipient_key_id, row.sender_key_id,
                                    message.content_key_id if message else None])
        recipient_key = keys.get(row.recipient_key_id or "")
        content_key = keys.get(message.content_key_id or "") if message else None
        if (message is None or domain is None or recipient_key is None or content_key is None
                or message.content_sealed is None):
            raise Unprocessable("the message or its recipient is gone")
        recipient = vault.open_text(recipient_key, row.recipient_sealed, "inbound.recipient")
        sender_key = keys.get(row.sender_key_id or "")
        envelope_sender = (vault.open_text(sender_key, row.sender_sealed, "inbound.sender")
                           if sender_key is not None and row.sender_sealed else "")
        document = Document.load(vault.open(content_key, message.content_sealed,
                                            f"message:{message.id}"))
        raw = document.mime_bytes
        headers = self._headers.get(message.id)
        if headers is None:
            headers = self._headers[message.id] = header_pairs(raw)
        from_addresses = [a for _, a in getaddresses([document.sender]) if "@" in a]
        sender = from_addresses[0] if len(from_addresses) == 1 else envelope_sender
        distribute(session, vault, domain=domain, recipient=recipient, sender=sender,
                   envelope_sender=envelope_sender, raw=raw, now=now,
                   public_url=services.settings.public_url,
                   require_verified=services.settings.require_verified_domains,
                   source_id=message.id)
        actions = matching_actions(session, vault, row.account_id, recipient, headers)
        dispatch(session, vault, services.settings, message=message, recipient=recipient,
                 actions=actions, now=now)
        facts = content.facts(document, storage_key=message.id, size=message.size, tags=[],
                              testmode=False)
        record(session, vault, account_id=row.account_id, domain_id=row.domain_id,
               facts=facts, event="accepted", recipient=Recipient(recipient, recipient_key),
               timestamp=now, extra={
                   "envelope": {"transport": "smtp", "sender": envelope_sender,
                                "targets": recipient},
                   "flags": {"is-authenticated": False, "is-routed": bool(actions),
                             "is-system-test": False, "is-test-mode": False,
                             "is-delayed-bounce": False},
                   "routes": [{"id": route_id} for route_id in
                              dict.fromkeys(a.route_id for a in actions)]})
        if not QUEUE.settle(session, [row_id], lease, now, status=PROCESSED,
                            attempts=row.attempts + 1, last_error=None):
            raise LeaseLost  # rolled back: whoever holds it now processes it
        return PROCESSED

    def _failed(self, row_id: int, lease: Lease, exc: Exception) -> str:
        """Settle a failed attempt in a transaction of its own (the attempt's rolled back):
        due again after the next delay, or failed for good."""
        error = _where(exc)
        now = self.services.clock.now()
        self._headers = {}
        with self.services.db.transaction() as session:
            attempts = session.scalar(select(InboundMessage.attempts)
                                      .where(InboundMessage.id == row_id))
            if attempts is None:
                return "lost"
            attempts += 1
            if isinstance(exc, Unprocessable) or attempts > len(RETRY_DELAYS):
                QUEUE.settle(session, [row_id], lease, now, status=FAILED, attempts=attempts,
                             last_error=error)
                log.error("inbound %s: failed for good: %s", row_id, error)
                return FAILED
            QUEUE.settle(session, [row_id], lease, now, attempts=attempts, last_error=error,
                         next_attempt_at=now + RETRY_DELAYS[attempts - 1])
        log.warning("inbound %s: attempt %d failed, retried later: %s", row_id, attempts, error)
        return "retry"


def _where(exc: BaseException) -> str:
    """The exception's type and the line that raised it, never its message (messages built
    from input can hold addresses)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{place}"[:120]


def header_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The message's header fields in order, unfolded (what routes' match_header reads)."""
    header = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return [(name, " ".join(str(value).split())) for name, value in header.items()]
