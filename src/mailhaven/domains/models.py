"""A sending domain belongs to one account and carries its DKIM key, sealed."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

DKIM_SECRET = classified(
    "non-personal", "none", "message authentication", "life of the domain",
    note="private key sealed by the master key",
)


class Domain(Base):
    __tablename__ = "domains"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    name: Mapped[str] = column(String(253), unique=True, data=TECHNICAL)
    state: Mapped[str] = column(String(16), default="unverified", data=TECHNICAL)
    spam_action: Mapped[str] = column(String(16), default="disabled", data=TECHNICAL)
    wildcard: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    require_tls: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    skip_verification: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    web_prefix: Mapped[str] = column(String(63), default="email", data=TECHNICAL)
    web_scheme: Mapped[str] = column(String(5), default="http", data=TECHNICAL)
    dkim_selector: Mapped[str] = column(String(63), data=TECHNICAL)
    dkim_key_size: Mapped[int] = column(Integer, default=2048, data=TECHNICAL)
    dkim_private_key: Mapped[bytes] = column(LargeBinary, data=DKIM_SECRET)
    dkim_public_key: Mapped[str] = column(String(1024), data=TECHNICAL)
    track_opens: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    track_opens_top: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    track_clicks: Mapped[str] = column(String(8), default="no", data=TECHNICAL)  # yes|htmlonly
    track_unsubscribes: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    unsubscribe_html_footer: Mapped[str | None] = column(Text, data=TECHNICAL)
    unsubscribe_text_footer: Mapped[str | None] = column(Text, data=TECHNICAL)
    dns_status: Mapped[str] = column(Text, default="{}", data=TECHNICAL)  # last verify, JSON
    dns_checked_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
