"""What the notice lifecycle stores. The register of sub-processors is in the main database
(it belongs to no region): companies, not people."""

from __future__ import annotations

import json

from sqlalchemy import Boolean, Float, ForeignKey, LargeBinary, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column
from mailhaven.vault import Vault

REGISTER = classified(
    "non-personal", "none", "telling people who receives their data",
    "life of the installation (the register's history is part of the notice's)",
    basis="legal obligation",
    note="companies the platform hands personal data to: name, purpose, categories, place, "
         "transfer mechanism, contract date, where to notify them")
SIGNING_KEY = classified(
    "non-personal", "none", "telling recipients of personal data of corrections and erasures",
    "until the sub-processor is removed", basis="legal obligation",
    note="the key that signs Article 19 notifications to this party, sealed by the master key")
SIGNING_LABEL = "subprocessor-signing"
NOTICE = classified(
    "non-personal", "none", "telling people how their data is processed",
    "life of the installation (every published version stays readable)",
    basis="legal obligation",
    note="the notice's text, what an amendment changes, when it was published and took effect")
PUBLISHER = classified(
    "non-personal", "none", "accountability for the notice", "life of the installation",
    basis="legal obligation", note="who published: \"cli\" or an actor label, never a name")
OBJECTION = classified(
    "non-personal", "none", "honouring an objection to an amendment of the notice",
    "life of the account (then under its legal hold)", basis="legal obligation",
    note="which version the account objected to and when its deletion is (or was) due")


class Subprocessor(Base):
    """A company that processes personal data for the platform. It may receive data from
    `effective_at` (the amendment that added it took effect) until `removed_at`."""

    __tablename__ = "subprocessors"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    name: Mapped[str] = column(String(200), data=REGISTER)
    purpose: Mapped[str] = column(Text, data=REGISTER)
    data_categories: Mapped[str] = column(Text, default="[]", data=REGISTER)  # JSON list
    location: Mapped[str] = column(String(200), data=REGISTER)  # "Frankfurt, Germany"
    region: Mapped[str | None] = column(String(8), nullable=True, data=REGISTER)  # None: all
    transfer_mechanism: Mapped[str] = column(String(64), data=REGISTER)  # adequacy, SCCs, …
    contract_date: Mapped[str] = column(String(10), data=REGISTER)  # YYYY-MM-DD
    notification_endpoint: Mapped[str | None] = column(String(2048), nullable=True,
                                                       data=REGISTER)
    signing_key_sealed: Mapped[bytes | None] = column(
        LargeBinary, nullable=True, data=SIGNING_KEY, info={"master_key_label": SIGNING_LABEL})
    added_at: Mapped[float] = column(Float, data=REGISTER)
    effective_at: Mapped[float] = column(Float, data=REGISTER)
    removed_at: Mapped[float | None] = column(Float, nullable=True, data=REGISTER)
    replaces_id: Mapped[str | None] = column(String(24), nullable=True, data=TECHNICAL)

    @property
    def categories(self) -> list[str]:
        return list(json.loads(self.data_categories or "[]"))


def active_subprocessors(session: Session, now: float) -> list[Subprocessor]:
    """Those who may receive personal data at `now`, by name."""
    return list(session.scalars(
        select(Subprocessor)
        .where(Subprocessor.effective_at <= now,
               or_(Subprocessor.removed_at.is_(None), Subprocessor.removed_at > now))
        .order_by(Subprocessor.name)))


def signing_key(vault: Vault, subprocessor: Subprocessor) -> str | None:
    """The key that signs notifications to `subprocessor` (the main database's vault)."""
    if subprocessor.signing_key_sealed is None:
        return None
    return vault.open_secret(SIGNING_LABEL, subprocessor.signing_key_sealed).decode()


class PrivacyNotice(Base):
    """One published version of the privacy notice (main database): plain text with `#`
    headings, in force from `effective_at`; `in_force_at` is when the scheduler saw it so."""

    __tablename__ = "privacy_notices"

    version: Mapped[str] = column(String(32), primary_key=True, data=NOTICE)
    text: Mapped[str] = column(Text, data=NOTICE)
    summary: Mapped[str] = column(Text, default="", data=NOTICE)
    published_at: Mapped[float] = column(Float, data=NOTICE)
    effective_at: Mapped[float] = column(Float, index=True, data=NOTICE)
    significant: Mapped[bool] = column(Boolean, default=False, data=NOTICE)
    in_force_at: Mapped[float | None] = column(Float, nullable=True, data=NOTICE)
    published_by: Mapped[str] = column(String(64), default="cli", data=PUBLISHER)


class NoticeObjection(Base):
    """An account's objection to a significant amendment (region database): its deletion
    is due at the version's effective date unless withdrawn before."""

    __tablename__ = "notice_objections"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    version: Mapped[str] = column(String(32), data=OBJECTION)
    objected_at: Mapped[float] = column(Float, data=OBJECTION)
    scheduled_for: Mapped[float] = column(Float, index=True, data=OBJECTION)
    withdrawn_at: Mapped[float | None] = column(Float, nullable=True, data=OBJECTION)
    carried_out_at: Mapped[float | None] = column(Float, nullable=True, data=OBJECTION)
