"""One row per suppressed address (or allowlisted address or domain) of a domain."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    OWNERSHIP,
    RECIPIENT_INDEX,
    TECHNICAL,
    classified,
    column,
)

SUPPRESSION = classified(
    "personal", "recipient", "honouring bounces, opt-outs and complaints",
    "until the customer removes it; erasure keeps only the keyed index",
    basis="legitimate interest",
    note="sealed under the recipient's vault key",
)
SUPPRESSION_FACTS = classified(
    "non-personal", "none", "honouring bounces, opt-outs and complaints", "life of the row")

KINDS = ("bounces", "unsubscribes", "complaints", "whitelists")


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("domain_id", "kind", "value_index"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP)
    kind: Mapped[str] = column(String(16), data=SUPPRESSION_FACTS)
    value_index: Mapped[str] = column(String(64), data=RECIPIENT_INDEX)
    key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL)  # ON DELETE SET NULL finds rows by it when keys go
    value_sealed: Mapped[bytes] = column(LargeBinary, data=SUPPRESSION)
    detail_sealed: Mapped[bytes | None] = column(LargeBinary, data=SUPPRESSION)  # error, reason
    code: Mapped[str | None] = column(String(8), data=SUPPRESSION_FACTS)
    value_type: Mapped[str] = column(String(8), default="address", data=SUPPRESSION_FACTS)
    tags: Mapped[str] = column(Text, default="[]", data=SUPPRESSION_FACTS)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
