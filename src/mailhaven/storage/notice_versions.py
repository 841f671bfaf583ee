"""Which version of the privacy notice is in force, for whoever records it (consents, the
privacy engine's context): read from the `privacy_notices` table of the main database by
name, so that the packages below `notices` can ask without importing it."""

from __future__ import annotations

from sqlalchemy import column, select, table
from sqlalchemy.orm import Session

from mailhaven.storage.db import Database

NOTICES = table("privacy_notices", column("version"), column("effective_at"),
                column("published_at"))


def version_in_force(session: Session, now: float) -> str | None:
    """The newest stored version whose effective date has come; None when none has (the
    built-in notice, `MAILHAVEN_NOTICE_VERSION`, is in force)."""
    found = session.execute(
        select(NOTICES.c.version).where(NOTICES.c.effective_at <= now)
        .order_by(NOTICES.c.effective_at.desc(), NOTICES.c.published_at.desc()).limit(1)
    ).scalar()
    return None if found is None else str(found)


def notice_in_force(main_db: Database, now: float, built_in: str) -> str:
    """The stored version in force, else the built-in one (`MAILHAVEN_NOTICE_VERSION`)."""
    with main_db.sessions() as session:
        return version_in_force(session, now) or built_in
