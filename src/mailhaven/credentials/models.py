"""One row per SMTP login of a domain: the login sealed and blind-indexed, the password as
an argon2id hash."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

LOGIN_SEALED = classified(
    "personal", "SMTP user", "SMTP authentication", "until the credential is deleted",
    note="the login (a mailbox name can be a person's), sealed under its subject's vault key",
)
LOGIN_INDEX = classified(
    "personal", "SMTP user", "SMTP authentication", "until the credential is deleted",
    note="keyed blind index (HMAC) of the login: SMTP AUTH finds the credential by it",
)
PASSWORD_HASH = classified(
    "non-personal", "none", "SMTP authentication", "until the credential is deleted",
    note="argon2id hash of the password; the password itself is never stored",
)


class SmtpCredential(Base):
    """A login is `local@<its domain's name>`, so SMTP AUTH, which is given only the login,
    finds the domain by name and then the row by the index in that domain's account."""

    __tablename__ = "smtp_credentials"
    __table_args__ = (UniqueConstraint("domain_id", "login_index"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    domain_id: Mapped[str] = column(
        String(24), ForeignKey("domains.id", ondelete="CASCADE"), data=OWNERSHIP)
    login_index: Mapped[str] = column(String(64), data=LOGIN_INDEX)
    key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL)
    login_sealed: Mapped[bytes] = column(LargeBinary, data=LOGIN_SEALED)
    password_hash: Mapped[str] = column(String(256), data=PASSWORD_HASH)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    password_changed_at: Mapped[float] = column(Float, data=TECHNICAL)
