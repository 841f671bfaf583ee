"""Received mail: the inbound queue (one row per received message and recipient, processed
from a lease) and the route-POST queue (forward("https://…") and store(notify=…) POSTs)."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    DELIVERY_STATE,
    OWNERSHIP,
    RECIPIENT_INDEX,
    RECIPIENT_SEALED,
    TECHNICAL,
    classified,
    column,
)
from mailhaven.webhooks.models import PENDING  # a route POST's states are a webhook POST's

WAITING, PROCESSED, FAILED = "waiting", "processed", "failed"
_WAITING_ROWS = text(f"status = '{WAITING}'")

SENDER_SEALED = classified(
    "personal", "sender", "receiving mail for the customer",
    "with the received message (3 days after processing) or until the sender is erased",
    note="the envelope sender (MAIL FROM), ciphertext under the sender's vault key",
)
SENDER_INDEX = classified(
    "personal", "sender", "receiving mail for the customer", "life of the record",
    note="keyed blind index (HMAC) of the envelope sender or of the From address: erasure "
         "and exports find a sender's received mail by it",
)
AUTH_VERDICT = classified(
    "non-personal", "none", "message authentication", "life of the record",
    note="SPF, DKIM and DMARC results (pass, fail, none…): no address or domain",
)


class InboundMessage(Base):
    """A message received at the MX for one recipient of an account: who (sealed), what
    authentication said, and where its processing stands (`storage.leases`)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_waiting_by_account", "account_id", "next_attempt_at",
              postgresql_where=_WAITING_ROWS, sqlite_where=_WAITING_ROWS),
    )

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    message_id: Mapped[str] = column(
        String(24), ForeignKey("messages.id", ondelete="CASCADE"), index=True, data=TECHNICAL
    )
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    recipient_key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL,
    )
    recipient_sealed: Mapped[bytes] = column(LargeBinary, data=RECIPIENT_SEALED)
    recipient_index: Mapped[str] = column(String(64), index=True, data=RECIPIENT_INDEX)
    sender_key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        data=TECHNICAL,
    )
    sender_sealed: Mapped[bytes | None] = column(LargeBinary, nullable=True, data=SENDER_SEALED)
    sender_index: Mapped[str | None] = column(String(64), nullable=True, index=True,
                                              data=SENDER_INDEX)
    from_index: Mapped[str | None] = column(String(64), nullable=True, index=True,
                                            data=SENDER_INDEX)
    spf: Mapped[str] = column(String(12), data=AUTH_VERDICT)
    dkim: Mapped[str] = column(String(12), data=AUTH_VERDICT)
    dmarc: Mapped[str] = column(String(12), data=AUTH_VERDICT)
    status: Mapped[str] = column(String(12), default=WAITING, data=DELIVERY_STATE)
    attempts: Mapped[int] = column(Integer, default=0, data=DELIVERY_STATE)
    last_error: Mapped[str | None] = column(String(120), nullable=True, data=classified(
        "non-personal", "none", "service operation", "life of the record",
        note="the exception's type and where it was raised: never its message"))
    next_attempt_at: Mapped[float] = column(Float, data=DELIVERY_STATE)
    lease_owner: Mapped[str | None] = column(String(40), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)


ROUTE_TARGET_SEALED = classified(
    "personal", "recipient", "inbound routing",
    "until the POST is finished and its record expires (30 days), or the recipient's key "
    "is erased",
    note="the forward/notify URL, ciphertext under the recipient's vault key: a route's "
         "captures of the recipient's address may be substituted into it",
)

FORWARD, NOTIFY = "forward", "notify"
_PENDING_ROWS = text(f"status = '{PENDING}'")


class RoutePost(Base):
    """One POST of one inbound message, for one recipient, to one URL. The body is not
    copied here: it is built at send time from the sealed message, so erasing the message
    (or the recipient's key, which seals the URL) stops the POST."""

    __tablename__ = "route_posts"
    __table_args__ = (Index("ix_route_posts_due", "status", "next_attempt_at"),
                      # the claim's fair shares: each account's pending POSTs, oldest first
                      Index("ix_route_posts_pending_by_account", "account_id",
                            "next_attempt_at", postgresql_where=_PENDING_ROWS,
                            sqlite_where=_PENDING_ROWS))

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP
    )
    storage_key: Mapped[str] = column(  # the inbound message (messages.id)
        String(24), ForeignKey("messages.id", ondelete="CASCADE"), index=True, data=TECHNICAL
    )
    route_id: Mapped[str] = column(String(24), data=TECHNICAL)
    kind: Mapped[str] = column(String(8), data=TECHNICAL)  # forward | notify
    subject_key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL,  # the recipient's key: erased, the POST is cancelled
    )
    recipient_sealed: Mapped[bytes] = column(LargeBinary, data=RECIPIENT_SEALED)
    url_sealed: Mapped[bytes] = column(LargeBinary, data=ROUTE_TARGET_SEALED)
    status: Mapped[str] = column(String(12), default=PENDING, data=DELIVERY_STATE)
    attempts: Mapped[int] = column(Integer, default=0, data=DELIVERY_STATE)
    attempt_log: Mapped[str] = column(Text, default="[]", data=DELIVERY_STATE,
                                      info={"note": "JSON: time, HTTP status, error, seconds"})
    next_attempt_at: Mapped[float] = column(Float, data=DELIVERY_STATE)
    lease_owner: Mapped[str | None] = column(String(40), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)
