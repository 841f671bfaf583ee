"""An event row: filterable columns in the clear, the event JSON sealed for its recipient."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    DELIVERY_STATE,
    MESSAGE_ID_INDEX,
    OWNERSHIP,
    RECIPIENT_INDEX,
    RECIPIENT_SEALED,
    TAGS,
    TECHNICAL,
    column,
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_domain_time", "domain_id", "timestamp", "id"),
        # A recipient's events: the Events API's recipient filter (a domain's page in time
        # order, read straight off the index), erasure and exports by prefix. account_id is
        # in it so that SQLite, which has no statistics, prefers it to ix_events_account_id
        # (one equality against two): the account's every event would be scanned instead.
        Index("ix_events_recipient_time", "recipient_index", "account_id", "domain_id",
              "timestamp", "id"),
        # A message's events (redaction at erasure, complaints, tracking); account_id for
        # the same reason.
        Index("ix_events_storage_key_account", "storage_key", "account_id"),
    )

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    event_id: Mapped[str] = column(String(32), unique=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP
    )
    storage_key: Mapped[str | None] = column(String(24), data=TECHNICAL)
    event: Mapped[str] = column(String(16), data=DELIVERY_STATE)
    timestamp: Mapped[float] = column(Float, data=TECHNICAL)
    severity: Mapped[str | None] = column(String(12), data=DELIVERY_STATE)
    message_id_index: Mapped[str | None] = column(String(64), data=MESSAGE_ID_INDEX)
    tags: Mapped[str] = column(Text, default="[]", data=TAGS)
    recipient_index: Mapped[str | None] = column(String(64), data=RECIPIENT_INDEX)
    key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL,  # ON DELETE SET NULL finds rows by it when keys go
    )
    payload: Mapped[bytes] = column(LargeBinary, data=RECIPIENT_SEALED)
