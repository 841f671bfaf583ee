"""The scheduler's sweep of what the panel keeps only for a while: ended sessions, login
attempts past their windows, one-time links past their lifetime."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete

from mailhaven.runner import PeriodicJob
from mailhaven.services import Services
from mailhaven.storage.db import Database
from mailhaven.users import sessions, throttle
from mailhaven.users.models import UserToken


class PanelSweeper(PeriodicJob):
    """Every 15 minutes, in one process of all that share the database, so the data
    inventory's promises (sessions: 12 hours at most, attempts: an hour) hold on an
    installation nobody logs in to."""

    name = "panel-sweep"
    every = 900.0

    def __init__(self, services: Services) -> None:
        super().__init__(services.db, services.clock)

    async def work(self) -> int:
        await asyncio.to_thread(sweep, self.db, self.clock.now())
        return 0  # done until the next turn: sleep


def sweep(db: Database, now: float) -> int:
    """What ended before `now`, deleted; how many rows."""
    with db.transaction() as session:
        ended = sessions.purge_expired(session, now=now)
        ended += throttle.purge(session, now=now)
        result = session.execute(delete(UserToken).where(UserToken.expires_at <= now))
        return ended + int(getattr(result, "rowcount", 0) or 0)
