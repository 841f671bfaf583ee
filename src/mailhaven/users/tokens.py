"""One-time links: e-mail confirmation, password reset, invitation, a change of address.
The link carries a 256-bit token; the database keeps its digest, and a token works once."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from mailhaven.errors import Gone, NotFound
from mailhaven.users.models import User, UserToken
from mailhaven.users.sessions import digest

PURPOSES = ("confirm", "reset", "invite", "email")
TTL = {"confirm": 3 * 86400, "reset": 3600, "invite": 7 * 86400, "email": 86400}
INVALID = "This link is not valid"
EXPIRED = "This link has expired or was already used"


def issue_token(session: Session, user_id: str, purpose: str, *, now: float,
                ttl: float | None = None) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    token = secrets.token_urlsafe(32)
    session.add(UserToken(digest=digest(token), user_id=user_id, purpose=purpose,
                          created_at=now, expires_at=now + (ttl or TTL[purpose])))
    return token


def peek_token(session: Session, token: str, purpose: str, *, now: float) -> User:
    """The user a live token is for, without using it (a page that asks before acting)."""
    row = session.get(UserToken, digest(token)) if 0 < len(token) <= 100 else None
    if row is None or row.purpose != purpose:
        raise NotFound(INVALID)
    user = session.get(User, row.user_id)
    if user is None:
        raise NotFound(INVALID)
    if row.used_at is not None or row.expires_at <= now:
        raise Gone(EXPIRED)
    return user


def redeem_token(session: Session, token: str, purpose: str, *, now: float) -> User:
    """Uses the token (once): the user it is for. Lock-free single use: the row is marked
    in the caller's transaction; a second redemption sees `used_at`."""
    user = peek_token(session, token, purpose, now=now)
    row = session.get(UserToken, digest(token), with_for_update=True)
    assert row is not None
    if row.used_at is not None:
        raise Gone(EXPIRED)
    row.used_at = now
    return user
