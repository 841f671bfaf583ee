"""An accepted message: its sealed content, stored once however many recipients it has."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import (
    CONTENT_SEALED,
    DELIVERY_STATE,
    OWNERSHIP,
    TAGS,
    TECHNICAL,
    column,
)

_COPIES = text("source_id IS NOT NULL")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)  # storage key
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    # The Message-ID is sealed, in the document and in each copy (deliveries); events keep
    # its blind index, for the Events API's filter.
    content_key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL,  # ON DELETE SET NULL finds rows by it when keys go
    )
    content_sealed: Mapped[bytes | None] = column(LargeBinary, data=CONTENT_SEALED)
    kind: Mapped[str] = column(String(8), data=TECHNICAL)  # "form" | "mime"
    size: Mapped[int] = column(Integer, data=TECHNICAL)
    batch: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    tags: Mapped[str] = column(Text, default="[]", data=TAGS)  # JSON array
    testmode: Mapped[bool] = column(Boolean, default=False, data=DELIVERY_STATE)
    dkim: Mapped[bool] = column(Boolean, default=True, data=DELIVERY_STATE)
    require_tls: Mapped[bool] = column(Boolean, default=False, data=DELIVERY_STATE)
    skip_verification: Mapped[bool] = column(Boolean, default=False, data=DELIVERY_STATE)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    # The received message this one copies (a route's forward to an address, a mailing
    # list's distribution): erasing that mail's sender erases its copies too. No foreign
    # key: the received message's row may go first (retention), the copy stays.
    source_id: Mapped[str | None] = column(String(24), nullable=True, data=TECHNICAL)

    __table_args__ = (Index("ix_messages_source_id", "source_id",
                            postgresql_where=_COPIES, sqlite_where=_COPIES),)
