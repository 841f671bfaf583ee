"""Hourly counters per domain (and per tag), and the tags themselves: nothing personal."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TAGS, TECHNICAL, classified, column

AGGREGATE = classified(
    "non-personal", "none", "statistics", "indefinitely (outlives event retention)",
    note="counts per hour, domain, tag and outcome; no person can be singled out",
)
TAG_RECORD = classified(
    "non-personal", "none", "reporting", "until the tag or its domain is deleted",
    note="customer-chosen tag names and descriptions; customers are told not to put "
         "personal data in tags",
)


class StatCount(Base):
    __tablename__ = "stat_counts"
    __table_args__ = (UniqueConstraint("domain_id", "tag", "hour", "event", "kind"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP)
    tag: Mapped[str] = column(String(256), default="", data=TAGS)  # "" = the whole domain
    hour: Mapped[int] = column(BigInteger, data=AGGREGATE)  # epoch seconds, start of the hour
    event: Mapped[str] = column(String(16), data=AGGREGATE)
    kind: Mapped[str] = column(String(48), data=AGGREGATE)  # "outgoing", "permanent:bounce"…
    count: Mapped[int] = column(Integer, default=0, data=AGGREGATE)


class Tag(Base):
    """A tag the domain has used (or described): its first and last use are read from the
    counters, so recording an event never writes here again after a tag's first use."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("domain_id", "tag"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP)
    tag: Mapped[str] = column(String(256), data=TAG_RECORD)
    description: Mapped[str] = column(Text, default="", data=TAG_RECORD)
