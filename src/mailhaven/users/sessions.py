"""Server-side web sessions: the cookie holds a random token, the database its digest.

A session ends after 30 idle minutes or 12 hours whatever happens; logging in always
starts a new one (no fixation), and a password change or removal ends them all."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.users.models import User, WebSession
from mailhaven.users.service import may, user_details
from mailhaven.vault import Vault

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as a page sees them."""

    user_id: str
    account_id: str
    role: str
    name: str
    email: str
    csrf: str
    totp_enabled: bool
    session_id: str  # the token's digest
    seen_at: float

    def may(self, permission: str) -> bool:
        return may(self.role, permission)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, now: float, verified: bool = True) -> str:
    """A new session for `user`; its cookie token (shown once, never stored). `verified`
    False: the password was right but a second factor is still owed."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(id=digest(token), user_id=user.id, account_id=user.account_id,
                           csrf=secrets.token_urlsafe(24), verified=verified, created_at=now,
                           seen_at=now, expires_at=now + ABSOLUTE_SECONDS))
    if verified:
        user.last_login_at = now
    return token


def find_session(session: Session, token: str, *, now: float) -> WebSession | None:
    """The live session behind a cookie token (verified or not), or None."""
    if not token or len(token) > 100:
        return None
    row = session.get(WebSession, digest(token))
    if row is None or row.expires_at <= now or row.seen_at + IDLE_SECONDS <= now:
        return None
    return row


def open_session(session: Session, vault: Vault, token: str, *, now: float) -> Viewer | None:
    """The signed-in user behind a cookie token, or None (no such session, timed out, a
    second factor still owed, the user gone). Reads only: `touch_session` keeps it alive."""
    row = find_session(session, token, now=now)
    if row is None or not row.verified:
        return None
    user = session.get(User, row.user_id)
    details = user_details(session, vault, user) if user is not None else None
    if user is None or details is None:
        return None
    return Viewer(user.id, user.account_id, user.role, details[0], details[1], row.csrf,
                  user.totp_enabled_at is not None, row.id, row.seen_at)


def touch_session(session: Session, session_id: str, *, now: float) -> None:
    """Keeps a session alive (the caller does it now and then, not on every page)."""
    row = session.get(WebSession, session_id)
    if row is not None:
        row.seen_at = max(row.seen_at, now)


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id == digest(token)))


def end_user_sessions(session: Session, user_id: str, *, keep: str | None = None) -> None:
    """Every session of the user ends (but `keep`, a digest: the one making the change)."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep is not None:
        query = query.where(WebSession.id != keep)
    session.execute(query)


def purge_expired(session: Session, *, now: float) -> int:
    """Sessions past their end; for the scheduler."""
    stale = list(session.scalars(select(WebSession.id).where(
        (WebSession.expires_at <= now) | (WebSession.seen_at <= now - IDLE_SECONDS))))
    if stale:
        session.execute(delete(WebSession).where(WebSession.id.in_(stale)))
    return len(stale)
