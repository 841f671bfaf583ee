"""An account is a customer; its API keys are stored only as digests."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

HOLDER_SEALED = classified(
    "personal", "account holder", "account management", "life of the account",
    note="sealed under the account holder's vault key",
)
SIGNING_KEY = classified(
    "non-personal", "none", "webhook authentication", "life of the account",
    note="the webhook signing key, sealed by the master key; shown to the account on request",
)
KEY_DIGEST = classified(
    "non-personal", "none", "authentication", "until the key is revoked",
    note="SHA-256 of a 160-bit random key; the key itself is shown once and never stored",
)

KEY_MAKER = classified(
    "non-personal", "none", "accountability (who made an API key)",
    "until the key or its maker is deleted",
    note="the id of the panel user who made the key: their name and address stay sealed "
         "in users",
)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    holder_key_id: Mapped[str | None] = column(String(24), data=TECHNICAL)
    name_sealed: Mapped[bytes | None] = column(LargeBinary, data=HOLDER_SEALED)
    email_sealed: Mapped[bytes | None] = column(LargeBinary, data=HOLDER_SEALED)
    region: Mapped[str] = column(String(8), default="us", data=TECHNICAL)
    signing_key_sealed: Mapped[bytes | None] = column(
        LargeBinary, data=SIGNING_KEY, info={"master_key_label": "webhook-signing-key:{id}"})
    deleted_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    legal_hold: Mapped[str | None] = column(String(48), data=TECHNICAL)  # what is kept, why
    hold_until: Mapped[float | None] = column(Float, data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    digest: Mapped[str] = column(String(64), unique=True, data=KEY_DIGEST)
    hint: Mapped[str] = column(String(16), data=TECHNICAL)  # last characters, for listing
    description: Mapped[str] = column(String(200), default="", data=TECHNICAL)
    # What the key may do (accounts.service.KEY_ROLES): the role of the user who made it,
    # or a lesser one; keys made by the CLI and at sign-up are "admin".
    role: Mapped[str] = column(String(16), default="admin", server_default="admin",
                               data=TECHNICAL)
    created_by: Mapped[str | None] = column(
        String(24), ForeignKey("users.id", ondelete="SET NULL"), data=KEY_MAKER)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    revoked_at: Mapped[float | None] = column(Float, data=TECHNICAL)
