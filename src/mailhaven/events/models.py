"""An event row: filterable columns in the clear, the event JSON sealed for its recipient."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    DELIVERY_STATE,
    OWNERSHIP,
    RECIPIENT_INDEX,
    RECIPIENT_SEALED,
    TAGS,
    TECHNICAL,
    column,
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_domain_time", "domain_id", "timestamp", "id"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    event_id: Mapped[str] = column(String(32), unique=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP
    )
    storage_key: Mapped[str | None] = column(String(24), index=True, data=TECHNICAL)
    event: Mapped[str] = column(String(16), data=DELIVERY_STATE)
    timestamp: Mapped[float] = column(Float, data=TECHNICAL)
    severity: Mapped[str | None] = column(String(12), data=DELIVERY_STATE)
    message_id: Mapped[str | None] = column(String(255), data=TECHNICAL)
    tags: Mapped[str] = column(Text, default="[]", data=TAGS)
    recipient_index: Mapped[str | None] = column(String(64), index=True, data=RECIPIENT_INDEX)
    key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        data=TECHNICAL,
    )
    payload: Mapped[bytes] = column(LargeBinary, data=RECIPIENT_SEALED)
