"""What the disclosure log stores, in the region's database: each handing over of an
account's personal data to a third party or an authority, the subjects it named (by blind
index only), and the queue of Article 19 notifications to the parties that received it."""

from __future__ import annotations

import json

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped

from mailhaven.controls.models import SUBJECT_INDEX
from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import DELIVERY_STATE, OWNERSHIP, TECHNICAL, classified, column

LOG = classified(
    "non-personal", "none", "telling people who received their data (accountability)",
    "the account's life, then its legal hold (3 years)", basis="legal obligation",
    note="who received the account's data, why, on which basis, which categories, who "
         "decided (a role or user label, never an address) and a short case reference "
         "(refused if it holds an address)")
ENDPOINT = classified(
    "non-personal", "none", "telling recipients of personal data of corrections and erasures",
    "the account's life, then its legal hold", basis="legal obligation",
    note="the receiving party's URL, logged by host only")
SIGNING_KEY = classified(
    "non-personal", "none", "telling recipients of personal data of corrections and erasures",
    "the account's life, then its legal hold", basis="legal obligation",
    note="the key that signs Article 19 notifications to this party, sealed by the master key")
SIGNING_LABEL = "disclosure-signing"
NOTIFICATION = classified(
    "non-personal", "none", "telling recipients of personal data of corrections and erasures",
    "3 years (the proof that they were told)", basis="legal obligation")
SUBJECT_HASH = classified(
    "personal", "recipient or account holder",
    "telling recipients of personal data of corrections and erasures",
    "until the notification is sent or given up (then cleared)", basis="legal obligation",
    note="SHA-256 of the normalised address (the identifier the receiving party already "
         "holds), sealed by the master key: computed before an erasure destroys the subject's "
         "key, kept only until the POST is settled")
SUBJECT_LABEL = "article19-subject"

KINDS = ("subprocessor", "authority", "third party")
EVENTS = ("erasure", "rectification", "restriction")


class Disclosure(Base):
    """One handing over of personal data; a legal record kept under the account's hold."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_account_at", "account_id", "at"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), data=OWNERSHIP)
    recipient: Mapped[str] = column(String(200), data=LOG)
    recipient_kind: Mapped[str] = column(String(16), data=LOG)
    subprocessor_id: Mapped[str | None] = column(String(24), nullable=True, data=TECHNICAL)
    endpoint: Mapped[str | None] = column(String(2048), nullable=True, data=ENDPOINT)
    signing_key_sealed: Mapped[bytes | None] = column(
        LargeBinary, nullable=True, data=SIGNING_KEY, info={"master_key_label": SIGNING_LABEL})
    legal_basis: Mapped[str] = column(String(200), data=LOG)
    purpose: Mapped[str] = column(Text, data=LOG)
    data_categories: Mapped[str] = column(Text, default="[]", data=LOG)  # JSON list
    decided_by: Mapped[str] = column(String(200), data=LOG)
    reference: Mapped[str | None] = column(String(120), nullable=True, data=LOG)
    at: Mapped[float] = column(Float, data=LOG)

    @property
    def categories(self) -> list[str]:
        return list(json.loads(self.data_categories or "[]"))


class DisclosureSubject(Base):
    """A subject whose data a disclosure handed over, by blind index."""

    __tablename__ = "disclosure_subjects"

    disclosure_id: Mapped[str] = column(
        String(24), ForeignKey("disclosures.id", ondelete="CASCADE"), primary_key=True,
        data=TECHNICAL)
    subject_index: Mapped[str] = column(String(64), primary_key=True, index=True,
                                        data=SUBJECT_INDEX)


PENDING = "pending"
_PENDING_ROWS = text(f"status = '{PENDING}'")


class Notification(Base):
    """One Article 19 POST to one party that received a subject's data: a leased queue
    (`storage.leases`) sent by `disclosures.poster`, and the record that it was sent."""

    __tablename__ = "disclosure_notifications"
    __table_args__ = (Index("ix_disclosure_notifications_due", "status", "next_attempt_at"),
                      Index("ix_disclosure_notifications_pending_by_account", "account_id",
                            "next_attempt_at", postgresql_where=_PENDING_ROWS,
                            sqlite_where=_PENDING_ROWS))

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    request_id: Mapped[str | None] = column(String(24), nullable=True, index=True,
                                            data=TECHNICAL)
    event: Mapped[str] = column(String(16), data=NOTIFICATION)
    party: Mapped[str] = column(String(200), data=NOTIFICATION)
    party_kind: Mapped[str] = column(String(16), data=NOTIFICATION)  # disclosure|subprocessor
    party_id: Mapped[str] = column(String(24), data=TECHNICAL)
    url: Mapped[str] = column(Text, data=ENDPOINT)
    subject_sealed: Mapped[bytes | None] = column(
        LargeBinary, nullable=True, data=SUBJECT_HASH, info={"master_key_label": SUBJECT_LABEL})
    status: Mapped[str] = column(String(12), default=PENDING, data=DELIVERY_STATE)
    attempts: Mapped[int] = column(Integer, default=0, data=DELIVERY_STATE)
    attempt_log: Mapped[str] = column(Text, default="[]", data=DELIVERY_STATE,
                                      info={"note": "JSON: time, HTTP status, error, seconds"})
    next_attempt_at: Mapped[float] = column(Float, data=DELIVERY_STATE)
    lease_owner: Mapped[str | None] = column(String(40), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=NOTIFICATION)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)
