"""The website's contact/sales form: its messages sealed under each sender's own vault key
(in the platform's account), limited per client network, purged by retention after the
operator's period (`Settings.contact_retention_days`, category `contact_messages`).

The consent text shown beside the form is kept here, by version, so each message records
the exact words its sender agreed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from mailhaven.addresses import mailboxes
from mailhaven.errors import BadRequest, TooManyRequests
from mailhaven.netpolicy import client_network
from mailhaven.privacy.models import FormCounter
from mailhaven.services import Services
from mailhaven.site.mail import platform_account
from mailhaven.site.models import ContactMessage
from mailhaven.storage.base import new_id
from mailhaven.storage.db import insert_for
from mailhaven.vault import VaultKey

TOPICS = ("sales", "support", "privacy", "other")
CONSENT_TEXTS = {
    "1": ("I agree that Mailhaven keeps my name, e-mail address, company and this message to "
          "answer me, for as long as the privacy notice says (one year unless it says "
          "otherwise), and that I can ask for them to be shown to me or erased at any time."),
}
CONSENT_VERSION = max(CONSENT_TEXTS, key=int)  # the text the form shows now
MAX_NAME = MAX_COMPANY = 200
MAX_EMAIL = 254
MAX_MESSAGE = 5000
HOUR = 3600.0
PER_CLIENT_PER_HOUR = 5  # a person writes once or twice; an office a few times
KEPT = 2 * 86400.0  # as the privacy form's counters, which share the table
LIMITED = "Too many messages from your network: try again in an hour"


@dataclass(frozen=True)
class ContactEntry:
    """A message as the operator reads it."""

    id: str
    name: str
    email: str
    company: str
    topic: str
    message: str
    consent_text_version: str
    consent_text: str
    received_at: float


def submit_contact(session: Session, services: Services, *, name: str, email: str,
                   company: str, topic: str, message: str, consent_text_version: str,
                   client: str | None) -> str:
    """Keep one message of the form; its id. A 400 names the field that is wrong, a 429
    says the client's network has sent enough this hour."""
    name, email, company, message = (name.strip(), email.strip(), company.strip(),
                                     message.strip())
    _check(name=name, email=email, company=company, topic=topic, message=message,
           consent_text_version=consent_text_version)
    now = services.clock.now()
    if _hit(session, services, client_network(client), now) > PER_CLIENT_PER_HOUR:
        raise TooManyRequests(LIMITED)
    account_id = platform_account(session, services)
    vault = services.vault
    key = vault.subject(session, account_id, email)
    row = ContactMessage(
        id=new_id(), account_id=account_id, subject_key_id=key.id,
        email_index=vault.blind_index(account_id, email),
        name_sealed=vault.seal_text(key, name, "contact.name"),
        email_sealed=vault.seal_text(key, email, "contact.email"),
        company_sealed=vault.seal_text(key, company, "contact.company"),
        message_sealed=vault.seal_text(key, message, "contact.message"),
        topic=topic, consent_text_version=consent_text_version,
        consent_text=CONSENT_TEXTS[consent_text_version], received_at=now)
    session.add(row)
    session.flush()
    return row.id


def _check(*, name: str, email: str, company: str, topic: str, message: str,
           consent_text_version: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise BadRequest(f"name: give your name (up to {MAX_NAME} characters)")
    found = list(mailboxes([email])) if len(email) <= MAX_EMAIL else []
    if len(found) != 1 or not found[0][1] or found[0][0].email != email:
        raise BadRequest("email: give one e-mail address, such as ann@example.com")
    if len(company) > MAX_COMPANY:
        raise BadRequest(f"company: up to {MAX_COMPANY} characters")
    if topic not in TOPICS:
        raise BadRequest(f"topic: one of {', '.join(TOPICS)}")
    if not message or len(message) > MAX_MESSAGE:
        raise BadRequest(f"message: write your message (up to {MAX_MESSAGE} characters)")
    if consent_text_version not in CONSENT_TEXTS:
        raise BadRequest("consent: the form's consent text is unknown; reload the page")


def _hit(session: Session, services: Services, network: str, now: float) -> int:
    """One more message from this client network in the current hour; how many it has had
    (counted in the privacy form's table, under a key of its own)."""
    session.execute(delete(FormCounter).where(FormCounter.window_start < now - KEPT))
    stmt = insert_for(session, FormCounter).values(
        bucket_index=services.vault.blind_index("contact-form:client", network),
        window_start=now - now % HOUR, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FormCounter.bucket_index, FormCounter.window_start],
        set_={"hits": FormCounter.hits + 1}).returning(FormCounter.hits)
    return int(session.execute(stmt).scalar_one())


def list_contact_messages(session: Session, services: Services) -> list[ContactEntry]:
    """Every message kept, newest first, opened for the platform's operator; a sender whose
    key was erased is gone from the list."""
    rows = list(session.scalars(select(ContactMessage).order_by(
        ContactMessage.received_at.desc(), ContactMessage.id)))
    keys = services.vault.keys(session, [r.subject_key_id for r in rows])
    return [_entry(services, keys[row.subject_key_id], row) for row in rows
            if row.subject_key_id in keys]


def _entry(services: Services, key: VaultKey, row: ContactMessage) -> ContactEntry:
    def opened(sealed: bytes, field: str) -> str:
        return services.vault.open_text(key, sealed, f"contact.{field}")

    return ContactEntry(
        row.id, opened(row.name_sealed, "name"), opened(row.email_sealed, "email"),
        opened(row.company_sealed, "company"), row.topic, opened(row.message_sealed, "message"),
        row.consent_text_version, row.consent_text, row.received_at)


def expired_messages(_accounts: object, cutoff: float) -> Select[Any]:
    """Retention's query (category `contact_messages`): messages received before `cutoff`,
    whoever's account (only the platform's has any)."""
    return select(ContactMessage.id).where(ContactMessage.received_at < cutoff)
