"""Stored templates and their versions: what the customer wrote, sealed under a content key
of the template's own, so deleting the template, its domain or the account's keys leaves
nothing readable, in backups either."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    OWNERSHIP,
    TECHNICAL,
    TEMPLATE_LABEL,
    TEMPLATE_SEALED,
    column,
)


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    # The order templates were created in: the list's pages follow it.
    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    public_id: Mapped[str] = column(String(36), unique=True, data=TECHNICAL)  # Mailgun's `id`
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    name: Mapped[str] = column(String(255), data=TEMPLATE_LABEL)
    # Erasing the key erases the template (ON DELETE CASCADE): nothing is left unreadable.
    content_key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL,
    )
    details_sealed: Mapped[bytes] = column(LargeBinary, data=TEMPLATE_SEALED)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)


class TemplateVersion(Base):
    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "tag"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    public_id: Mapped[str] = column(String(36), unique=True, data=TECHNICAL)
    template_id: Mapped[int] = column(
        BigId, ForeignKey("templates.id", ondelete="CASCADE"), index=True, data=TECHNICAL
    )
    tag: Mapped[str] = column(String(255), data=TEMPLATE_LABEL)
    active: Mapped[bool] = column(Boolean, default=False, data=TECHNICAL)
    content_sealed: Mapped[bytes] = column(LargeBinary, data=TEMPLATE_SEALED)
    size: Mapped[int] = column(Integer, data=TECHNICAL)  # bytes of the template's content
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
