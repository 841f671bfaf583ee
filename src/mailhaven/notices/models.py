"""What the notice lifecycle stores: the notice's versions (main database) and accounts'
objections to them (each account's region). The register of sub-processors the notice
lists is `disclosures.register`."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

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

ANNOUNCED = classified(
    "non-personal", "none", "telling every holder of a significant amendment, once",
    "life of the installation", basis="legal obligation",
    note="which version this region's holders were mailed, when, and how many addresses")


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


class NoticeAnnouncement(Base):
    """A significant amendment mailed to this region's holders (region database): written in
    the transaction that queues the mails, so it is done once, and the scheduler does what a
    failed announcement left undone."""

    __tablename__ = "notice_announcements"

    version: Mapped[str] = column(String(32), primary_key=True, data=ANNOUNCED)
    announced_at: Mapped[float] = column(Float, data=ANNOUNCED)
    mailed: Mapped[int] = column(Integer, default=0, data=ANNOUNCED)
