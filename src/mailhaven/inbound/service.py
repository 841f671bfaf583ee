"""Storing what the MX accepted: for each receiving domain, the message sealed as a `messages`
row of kind "inbound" (the raw MIME with our trace headers, in a Document under a fresh
content key) and one `inbound_messages` row per recipient, the recipient and the envelope
sender sealed under their subject keys. Also: which account a recipient's domain belongs
to, and what erasure removes."""

from __future__ import annotations

import base64
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.clock import Clock, monotonic
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.inbound.auth import Verdicts
from mailhaven.inbound.models import WAITING, InboundMessage
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.sending.service import new_message_id
from mailhaven.storage import revocations
from mailhaven.storage.base import new_id, table
from mailhaven.storage.db import Database
from mailhaven.storage.group_commit import GroupCommit
from mailhaven.storage.leases import LeasedQueue
from mailhaven.storage.revocations import Revoked
from mailhaven.vault import Vault

QUEUE = LeasedQueue(InboundMessage, waiting=WAITING)
KIND = "inbound"
DOMAIN_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Receiver:
    """The domain a recipient's mail is for, and the account that owns it."""

    domain_id: str
    account_id: str
    name: str


def receiver(session: Session, name: str, *, require_verified: bool = True) -> Receiver | None:
    """The copy of domain `name` that receives its mail: the verified one. Where verification
    is not required (`require_verified_domains`, as for sending), else the only one (names
    held unverified by several accounts receive for none): an unverified copy may be anyone's
    claim to a name whose MX already points here. One query on the (name, account_id)
    unique index."""
    rows = session.execute(
        select(Domain.id, Domain.account_id, Domain.state)
        .where(Domain.name == name.strip().lower().rstrip("."))
        .order_by(Domain.state != ACTIVE_DOMAIN).limit(2)).all()
    if rows and (rows[0].state == ACTIVE_DOMAIN or (len(rows) == 1 and not require_verified)):
        return Receiver(rows[0].id, rows[0].account_id, name.strip().lower().rstrip("."))
    return None


class Receivers:
    """`receiver`, remembered for a short while: RCPT asks for every recipient, and a burst
    of mail for one domain asks the same question again and again."""

    def __init__(self, db: Database, *, require_verified: bool = True,
                 seconds: float = DOMAIN_CACHE_SECONDS, size: int = 10_000) -> None:
        self.db, self.seconds, self.size = db, seconds, size
        self.require_verified = require_verified
        self._found: dict[str, tuple[float, Receiver | None]] = {}
        self._lock = threading.Lock()
        # a deleted domain (or account) receives no more, on every node within a second
        revocations.subscribe(self)

    def forget(self, name: str) -> None:
        with self._lock:
            self._found.pop(name, None)

    def drop(self, revoked: Collection[Revoked] | None) -> None:
        """What `storage.revocations` heard: domains and accounts named, or (None) all."""
        with self._lock:
            if revoked is None:
                self._found.clear()
                return
            names = {r.value for r in revoked if r.kind == "domain"}
            accounts = {r.value for r in revoked if r.kind == "account"}
            self._found = {name: found for name, found in self._found.items()
                           if name not in names and not (
                               found[1] is not None and found[1].account_id in accounts)}

    def of(self, name: str) -> Receiver | None:
        """Blocking (a query when not remembered): call it in a thread."""
        name = name.strip().lower().rstrip(".")
        now = monotonic()
        with self._lock:
            found = self._found.get(name)
        if found is not None and found[0] > now:
            return found[1]
        with self.db.sessions() as session:
            answer = receiver(session, name, require_verified=self.require_verified)
        with self._lock:
            if len(self._found) >= self.size:
                self._found.clear()
            self._found[name] = (now + self.seconds, answer)
        return answer


@dataclass(frozen=True)
class Received:
    """One message as the MX took it, for the recipients of one domain."""

    receiver: Receiver
    recipients: list[str]
    mail_from: str  # the envelope sender; "" for a null return path
    raw: bytes  # as received, our trace headers prepended
    head: Head
    verdicts: Verdicts


def header_section(raw: bytes, limit: int) -> bytes | None:
    """The header section of `raw` (its fields, through the blank line), or None when it is
    longer than `limit` bytes: found without parsing, so a huge header costs one scan of
    `limit` bytes. A message with no blank line is all header."""
    if raw.startswith(b"\r\n"):
        return b""
    end = raw.find(b"\r\n\r\n", 0, limit + 2)
    if end >= 0:
        return raw[:end + 4]
    return raw if len(raw) <= limit else None


@dataclass(frozen=True)
class Head:
    """What intake reads of a message's header (unfolded, as written)."""

    from_: str
    subject: str
    message_id: str  # without <>; "" when it has none
    hops: int = 0  # Received fields: RFC 5321 6.3's loop detection counts them

    @classmethod
    def of(cls, raw: bytes) -> Head:
        """Read the header only (never the body): malformed MIME is no error here. Slow on
        a large header (pure Python): call it in a thread, on a bounded `header_section`."""
        header = BytesHeaderParser(policy=compat32).parsebytes(raw)

        def field(name: str) -> str:
            value = header.get(name)
            return " ".join(str(value).split()) if value is not None else ""

        return cls(field("From"), field("Subject"), field("Message-ID").strip().strip("<>"),
                   len(header.get_all("Received") or ()))

    @property
    def from_address(self) -> str:
        addresses = [a for _, a in getaddresses([self.from_]) if "@" in a]
        return addresses[0] if len(addresses) == 1 else ""


def store(session: Session, vault: Vault, received: Received, now: float) -> str:
    """Seal one message for one domain's recipients and queue it: the storage key."""
    account_id, domain_id = received.receiver.account_id, received.receiver.domain_id
    message_id = received.head.message_id or new_message_id(received.receiver.name, now)
    document = Document(
        message_id=message_id, created_at=now, sender=received.head.from_,
        to=list(received.recipients), cc=[], subject=received.head.subject, text=None,
        html=None, amp_html=None, headers=[], variables={}, batch=False,
        mime=base64.b64encode(received.raw).decode(), method="smtp")
    key = vault.new_content_key(session, account_id)
    storage_key = new_id()
    session.execute(table(Message).insert(), [{
        "id": storage_key, "account_id": account_id, "domain_id": domain_id,
        "content_key_id": key.id, "kind": KIND, "size": len(received.raw), "batch": False,
        "tags": "[]", "testmode": False, "dkim": False, "require_tls": False,
        "skip_verification": False, "created_at": now,
        "content_sealed": vault.seal(key, document.dump(), f"message:{storage_key}")}])
    people = [*received.recipients, *([received.mail_from] if received.mail_from else [])]
    keys = vault.subjects(session, account_id, people)
    sender_key = keys[received.mail_from] if received.mail_from else None
    from_address = received.head.from_address
    verdicts = received.verdicts
    rows = []
    for recipient in received.recipients:
        recipient_key = keys[recipient]
        rows.append({
            "message_id": storage_key, "account_id": account_id, "domain_id": domain_id,
            "recipient_key_id": recipient_key.id,
            "recipient_sealed": vault.seal_text(recipient_key, recipient, "inbound.recipient"),
            "recipient_index": vault.blind_index(account_id, recipient),
            "sender_key_id": sender_key.id if sender_key else None,
            "sender_sealed": (vault.seal_text(sender_key, received.mail_from, "inbound.sender")
                              if sender_key else None),
            "sender_index": (vault.blind_index(account_id, received.mail_from)
                             if received.mail_from else None),
            "from_index": vault.blind_index(account_id, from_address) if from_address else None,
            "spf": verdicts.spf, "dkim": verdicts.dkim, "dmarc": verdicts.dmarc,
            "status": WAITING, "attempts": 0, "last_error": None, "next_attempt_at": now,
            "lease_owner": None, "created_at": now, "updated_at": now})
    session.execute(table(InboundMessage).insert(), rows)
    return storage_key


def store_all(db: Database, vault: Vault, clock: Clock,
              batch: list[list[Received]]) -> list[list[str]]:
    """Each SMTP transaction's messages (one per receiving domain), in one transaction."""
    now = clock.now()
    with db.transaction() as session:
        return [[store(session, vault, received, now) for received in transaction]
                for transaction in batch]


def group_commit(db: Database, vault: Vault, clock: Clock) -> GroupCommit[
        list[Received], list[str]]:
    """Concurrent SMTP sessions' messages share transactions (and their fsync)."""

    def write(batch: list[list[Received]]) -> Sequence[list[str]]:
        return store_all(db, vault, clock, batch)

    return GroupCommit(write, max_batch=32, name="inbound")


def erase(session: Session, account_id: str, index: str) -> list[str]:
    """Remove the received mail of the subject with blind index `index` (as a recipient,
    envelope sender or From): every queue row of those messages goes; the storage keys are
    returned, with those of the copies made from them (routes' forwards to an address,
    mailing lists' distributions: the same mail, sent on), for erasure to shred their
    bodies and take the address out of their events."""
    who = (InboundMessage.recipient_index == index) | (InboundMessage.sender_index == index) \
        | (InboundMessage.from_index == index)
    storage_keys = sorted(set(session.scalars(select(InboundMessage.message_id).where(
        InboundMessage.account_id == account_id, who))))
    for start in range(0, len(storage_keys), 500):
        session.execute(delete(InboundMessage).where(
            InboundMessage.account_id == account_id,
            InboundMessage.message_id.in_(storage_keys[start:start + 500]))
            .execution_options(synchronize_session=False))
    copies = [key for start in range(0, len(storage_keys), 500)
              for key in session.scalars(select(Message.id).where(
                  Message.source_id.in_(storage_keys[start:start + 500]),
                  Message.account_id == account_id))]
    return storage_keys + sorted(set(copies) - set(storage_keys))
