"""A sending domain belongs to one account; its DKIM keys, sealed, live beside it."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, relationship

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

DKIM_SECRET = classified(
    "non-personal", "none", "message authentication",
    "life of the key: deleted a week after a rotation retires it, or with its domain",
    note="private key sealed by the master key",
)

MESSAGE_TTL = classified(
    "non-personal", "none", "storage limitation (retention settings)", "life of the domain",
    note="how long the domain's stored messages are kept, in seconds, as the customer chose",
)

ACTIVE_DOMAIN = "active"  # verified: its DNS shows this copy's records
_VERIFIED = text(f"state = '{ACTIVE_DOMAIN}'")


class Domain(Base):
    """A name is claimed by verifying it: until then several accounts may hold a copy of
    it (each with its own DKIM keys), and the first copy DNS proves becomes the only one
    that can be `active`."""

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("name", "account_id", name="uq_domains_name_account"),
        Index("uq_domains_verified_name", "name", unique=True, sqlite_where=_VERIFIED,
              postgresql_where=_VERIFIED),
    )

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    name: Mapped[str] = column(String(253), data=TECHNICAL)
    state: Mapped[str] = column(String(16), default="unverified", data=TECHNICAL)
    spam_action: Mapped[str] = column(String(16), default="disabled", data=TECHNICAL)
    wildcard: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    require_tls: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    skip_verification: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    web_prefix: Mapped[str] = column(String(63), default="email", data=TECHNICAL)
    web_scheme: Mapped[str] = column(String(5), default="http", data=TECHNICAL)
    track_opens: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    track_opens_top: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    track_clicks: Mapped[str] = column(String(8), default="no", data=TECHNICAL)  # yes|htmlonly
    track_unsubscribes: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    unsubscribe_html_footer: Mapped[str | None] = column(Text, data=TECHNICAL)
    unsubscribe_text_footer: Mapped[str | None] = column(Text, data=TECHNICAL)
    dns_status: Mapped[str] = column(Text, default="{}", data=TECHNICAL)  # last verify, JSON
    dns_checked_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    # Mailgun's message_ttl, in seconds (domains/options.py); None: the account's period.
    message_ttl: Mapped[int | None] = column(Integer, data=MESSAGE_TTL)
    encrypt_incoming_message: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)

    # Loaded with the domain: its records, its verification and its signer all need them,
    # often after the session that read the domain has closed.
    dkim_keys: Mapped[list[DkimKey]] = relationship(
        back_populates="domain", cascade="all, delete-orphan", passive_deletes=True,
        lazy="selectin", order_by="DkimKey.created_at")


class DkimKey(Base):
    """One DKIM key of a domain (domains/keys.py tells its life): `active` keys sign,
    `pending` ones are published and wait for DNS to show them, `retiring` ones no longer
    sign but stay published until `retire_after`, so mail they signed still verifies."""

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP)
    selector: Mapped[str] = column(String(63), data=TECHNICAL)
    algorithm: Mapped[str] = column(String(16), data=TECHNICAL)  # rsa-sha256|ed25519-sha256
    key_size: Mapped[int] = column(Integer, data=TECHNICAL)
    private_key: Mapped[bytes] = column(LargeBinary, data=DKIM_SECRET,
                                        info={"master_key_label": "dkim:{domain_id}"})
    public_key: Mapped[str] = column(String(1024), data=TECHNICAL)  # the record's p=
    state: Mapped[str] = column(String(12), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    activated_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    retire_after: Mapped[float | None] = column(Float, data=TECHNICAL)

    domain: Mapped[Domain] = relationship(back_populates="dkim_keys")
