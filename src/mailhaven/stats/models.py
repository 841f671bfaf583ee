"""Hourly counters per domain (and per tag): no address, no message, nothing personal."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TAGS, TECHNICAL, classified, column

AGGREGATE = classified(
    "non-personal", "none", "statistics", "indefinitely (outlives event retention)",
    note="counts per hour, domain, tag and outcome; no person can be singled out",
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
