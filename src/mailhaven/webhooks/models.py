"""Webhooks: where a customer wants events POSTed, and the queue of those POSTs."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import DELIVERY_STATE, OWNERSHIP, TECHNICAL, classified, column

ENDPOINT = classified(
    "non-personal", "none", "event notification", "until the customer removes the webhook",
    note="the customer's own endpoint URL; logged by host only, since it may carry a secret",
)


class Webhook(Base):
    """One URL and the event types it wants; `domain_id` NULL is an account-level webhook."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_scope", "account_id", "domain_id"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), data=OWNERSHIP
    )
    domain_id: Mapped[str | None] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), nullable=True, data=OWNERSHIP
    )
    url: Mapped[str] = column(Text, data=ENDPOINT)
    event_types: Mapped[str] = column(Text, default="[]", data=TECHNICAL)  # JSON list
    description: Mapped[str] = column(String(200), default="", data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)


PENDING, SENT, REFUSED, GAVE_UP, CANCELLED = "pending", "sent", "refused", "gave-up", "cancelled"
_PENDING_ROWS = text(f"status = '{PENDING}'")


class WebhookDelivery(Base):
    """One event to POST to one URL. The payload is not copied here: it is read from the
    sealed event at send time, so erasing the recipient's key also stops the webhook."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      # the claim's fair shares: each account's pending POSTs, oldest first
                      Index("ix_webhook_deliveries_pending_by_account", "account_id",
                            "next_attempt_at", postgresql_where=_PENDING_ROWS,
                            sqlite_where=_PENDING_ROWS))

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP
    )
    event_id: Mapped[str] = column(
        String(32), ForeignKey("events.event_id", ondelete="CASCADE"), index=True,
        data=TECHNICAL,
    )
    webhook: Mapped[str] = column(String(16), data=TECHNICAL)  # permanent_fail, opened…
    url: Mapped[str] = column(Text, data=ENDPOINT)
    status: Mapped[str] = column(String(12), default=PENDING, data=DELIVERY_STATE)
    attempts: Mapped[int] = column(Integer, default=0, data=DELIVERY_STATE)
    attempt_log: Mapped[str] = column(Text, default="[]", data=DELIVERY_STATE,
                                      info={"note": "JSON: time, HTTP status, error, seconds"})
    next_attempt_at: Mapped[float] = column(Float, data=DELIVERY_STATE)
    lease_owner: Mapped[str | None] = column(String(40), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)
