"""What a subject has said, as stored: named only by its keyed blind index (a recipient) or
its account id (an account holder), never by address."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

SUBJECT_INDEX = classified(
    "personal", "recipient or account holder", "honouring rights and choices", "life of the record",
    basis="legal obligation",
    note="a keyed blind index (recipient) or an account id (account holder); never an address")
CONTROL = classified(
    "non-personal", "none", "honouring restriction and objection", "until lifted",
    basis="legal obligation")
CONSENT = classified(
    "non-personal", "none", "proof of consent and its withdrawal",
    "life of the account, then 3 years", basis="legal obligation")


class SubjectControl(Base):
    """Restriction and objection: processing limited to storage while set."""

    __tablename__ = "subject_controls"
    __table_args__ = (Index("uq_subject_controls_subject_index", "account_id", "subject_index",
                            unique=True),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), data=OWNERSHIP)
    subject_index: Mapped[str] = column(String(64), data=SUBJECT_INDEX)
    restricted: Mapped[bool] = column(Boolean, default=False, data=CONTROL)
    objected: Mapped[bool] = column(Boolean, default=False, data=CONTROL)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)


class Consent(Base):
    """One grant or withdrawal; the latest row per (subject, purpose) is in force."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_subject", "account_id", "subject_index", "purpose"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), data=OWNERSHIP)
    subject_index: Mapped[str] = column(String(64), data=SUBJECT_INDEX)
    purpose: Mapped[str] = column(String(32), data=CONSENT)
    granted: Mapped[bool] = column(Boolean, data=CONSENT)
    source: Mapped[str] = column(String(32), data=CONSENT)
    notice_version: Mapped[str] = column(String(32), data=CONSENT)
    at: Mapped[float] = column(Float, data=CONSENT)
    deadline: Mapped[float | None] = column(Float, data=CONSENT)  # an opt-out's legal limit
