"""The platform's own account (one row), and the messages of its website's contact form."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

CONTACT_SEALED = classified(
    "personal", "website visitor", "answering contact and sales enquiries",
    "contact_retention_days (default 365 days) after receipt", basis="consent",
    note="the sender's name, address, company and message, sealed under the sender's vault key")
CONTACT_INDEX = classified(
    "personal", "website visitor", "answering contact and sales enquiries",
    "contact_retention_days (default 365 days) after receipt", basis="consent",
    note="keyed blind index (HMAC) of the sender's address: finds their messages for an "
         "access or erasure request")
CONSENT_SHOWN = classified(
    "non-personal", "none", "proof of consent",
    "contact_retention_days (default 365 days) after receipt", basis="consent",
    note="the version and wording of the consent text the sender was shown (our own text)")


class Platform(Base):
    """The platform's own account, which sends its system mail: one row, key "platform"."""

    __tablename__ = "platform"

    key: Mapped[str] = column(String(16), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), data=OWNERSHIP)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)


class ContactMessage(Base):
    """One submission of the public contact/sales form."""

    __tablename__ = "contact_messages"
    __table_args__ = (Index("ix_contact_messages_received_at", "received_at"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(  # the platform's: the sender's key lives there
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    subject_key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), index=True,
        data=TECHNICAL)
    email_index: Mapped[str] = column(String(64), index=True, data=CONTACT_INDEX)
    name_sealed: Mapped[bytes] = column(LargeBinary, data=CONTACT_SEALED)
    email_sealed: Mapped[bytes] = column(LargeBinary, data=CONTACT_SEALED)
    company_sealed: Mapped[bytes] = column(LargeBinary, data=CONTACT_SEALED)
    message_sealed: Mapped[bytes] = column(LargeBinary, data=CONTACT_SEALED)
    topic: Mapped[str] = column(String(16), data=TECHNICAL)  # one of contact.TOPICS
    consent_text_version: Mapped[str] = column(String(32), data=CONSENT_SHOWN)
    consent_text: Mapped[str] = column(Text, data=CONSENT_SHOWN)
    received_at: Mapped[float] = column(Float, data=TECHNICAL)
