"""The people who use the panel: users of an account, their web sessions, their one-time
links. A user's name and address are sealed under their subject key in the account; the
address is found by a platform-wide blind index (a login names no account)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

USER_SEALED = classified(
    "personal", "account user", "account management", "life of the user or the account",
    note="sealed under the user's vault key; erasing the key (or the account) erases it",
)
USER_INDEX = classified(
    "personal", "account user", "authentication", "life of the user or the account",
    note="keyed blind index (HMAC) of the login address: finds the user at login",
)
PASSWORD_HASH = classified(
    "non-personal", "none", "authentication", "life of the user or the account",
    note="argon2id hash of the password; the password itself is never stored",
)
TOTP_SEALED = classified(
    "personal", "account user", "authentication", "until the user turns 2FA off",
    note="the TOTP secret, sealed under the user's vault key",
)
RECOVERY_DIGESTS = classified(
    "non-personal", "none", "authentication", "until used or 2FA is turned off",
    note="SHA-256 digests of 80-bit random recovery codes, each used once",
)
SESSION_DIGEST = classified(
    "non-personal", "none", "authentication", "until the session ends (12 hours at most)",
    note="SHA-256 of a 256-bit random cookie value; the value itself is never stored",
)
ATTEMPT_INDEX = classified(
    "personal", "account user", "login and mail throttling", "1 hour",
    note="keyed blind index (HMAC) of the address or client network a login failed for or "
         "a link was mailed to; neither can be read back",
)
TOKEN_DIGEST = classified(
    "non-personal", "none", "authentication", "until used or expired (at most 7 days)",
    note="SHA-256 of a one-time link's 256-bit token (confirmation, reset, invitation)",
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    role: Mapped[str] = column(String(16), data=TECHNICAL)
    # Erasing the user's key erases the user (ON DELETE CASCADE).
    key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL)
    name_sealed: Mapped[bytes] = column(LargeBinary, data=USER_SEALED)
    email_sealed: Mapped[bytes] = column(LargeBinary, data=USER_SEALED)
    email_index: Mapped[str] = column(String(64), unique=True, data=USER_INDEX)
    password_hash: Mapped[str | None] = column(String(200), data=PASSWORD_HASH)
    totp_secret_sealed: Mapped[bytes | None] = column(LargeBinary, data=TOTP_SEALED)
    totp_enabled_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    recovery_codes: Mapped[str | None] = column(Text, data=RECOVERY_DIGESTS)  # JSON digests
    # The last 30-second TOTP step a code was accepted for: each code works once.
    totp_last_step: Mapped[int | None] = column(Integer, data=TECHNICAL)
    confirmed_at: Mapped[float | None] = column(Float, data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    last_login_at: Mapped[float | None] = column(Float, data=TECHNICAL)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = column(String(64), primary_key=True, data=SESSION_DIGEST)
    user_id: Mapped[str] = column(
        String(24), ForeignKey("users.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    account_id: Mapped[str] = column(String(24), data=OWNERSHIP)
    csrf: Mapped[str] = column(String(64), data=TECHNICAL)  # the session's form token
    verified: Mapped[bool] = column(Boolean, data=TECHNICAL)  # every factor given
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    seen_at: Mapped[float] = column(Float, data=TECHNICAL)
    expires_at: Mapped[float] = column(Float, index=True, data=TECHNICAL)


class UserToken(Base):
    __tablename__ = "user_tokens"

    digest: Mapped[str] = column(String(64), primary_key=True, data=TOKEN_DIGEST)
    user_id: Mapped[str] = column(
        String(24), ForeignKey("users.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    purpose: Mapped[str] = column(String(16), data=TECHNICAL)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
    expires_at: Mapped[float] = column(Float, data=TECHNICAL)
    used_at: Mapped[float | None] = column(Float, data=TECHNICAL)


class AuthAttempt(Base):
    """One failed login (wrong password or code) or one mailed link (sign-up, reset), kept an
    hour: counted per address and per client network by every process alike
    (users.throttle)."""

    __tablename__ = "auth_attempts"

    id: Mapped[int] = column(Integer, primary_key=True, autoincrement=True, data=TECHNICAL)
    kind: Mapped[str] = column(String(16), data=TECHNICAL)  # "login" (failed) or "mail"
    address_index: Mapped[str] = column(String(64), index=True, data=ATTEMPT_INDEX)
    network_index: Mapped[str] = column(String(64), index=True, data=ATTEMPT_INDEX)
    at: Mapped[float] = column(Float, index=True, data=TECHNICAL)
