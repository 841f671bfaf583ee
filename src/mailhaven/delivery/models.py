"""The queue: one row per (message, recipient); a claim is a lease on `next_attempt_at`."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, false, text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    DELIVERY_STATE,
    OWNERSHIP,
    RECIPIENT_SEALED,
    TECHNICAL,
    column,
)

QUEUED, DELIVERED, FAILED, CANCELLED = "queued", "delivered", "failed", "cancelled"
_QUEUED_ROWS = text(f"status = '{QUEUED}'")


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),
                      # the claim's fair shares: each account's queued copies, oldest first
                      Index("ix_deliveries_queued_by_account", "account_id",
                            "next_attempt_at", postgresql_where=_QUEUED_ROWS,
                            sqlite_where=_QUEUED_ROWS))

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    message_id: Mapped[str] = column(
        String(24), ForeignKey("messages.id", ondelete="CASCADE"), index=True, data=TECHNICAL
    )
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(String(24), data=OWNERSHIP)
    subject_key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL,  # erasure and exports find a subject's copies by it
    )
    address_sealed: Mapped[bytes] = column(LargeBinary, data=RECIPIENT_SEALED)
    variables_sealed: Mapped[bytes | None] = column(LargeBinary, data=RECIPIENT_SEALED)
    # The message's Message-ID, for the copy's events once the body is gone (retention).
    message_id_sealed: Mapped[bytes | None] = column(LargeBinary, data=RECIPIENT_SEALED)
    status: Mapped[str] = column(String(12), default=QUEUED, data=DELIVERY_STATE)
    attempts: Mapped[int] = column(Integer, default=0, data=DELIVERY_STATE)
    next_attempt_at: Mapped[float] = column(Float, data=DELIVERY_STATE)
    # When the first attempt began (its claim): events tell how long after acceptance.
    first_attempt_at: Mapped[float | None] = column(Float, nullable=True, data=DELIVERY_STATE)
    lease_owner: Mapped[str | None] = column(String(40), data=TECHNICAL)
    # The owner cancelled the domain's queue while a worker held this copy: its attempt, if
    # it doesn't end the copy, settles it as cancelled instead of queueing it again.
    cancel_requested: Mapped[bool] = column(Boolean, default=False, server_default=false(),
                                            data=DELIVERY_STATE)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)
