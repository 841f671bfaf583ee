"""The scheduler of the notice lifecycle: amendments come into force on their date, and
the accounts that objected to one are deleted that day, once, whichever process runs it."""

from __future__ import annotations

import asyncio

from mailhaven.notices.service import announce_owed, bring_into_force, carry_out_due
from mailhaven.runner import PeriodicJob
from mailhaven.services import Services


class NoticeRunner(PeriodicJob):
    """Every 5 minutes, in one process of all that share the region's database: owed
    announcements mailed, versions marked in force (main database), due deletions carried
    out (this region's)."""

    name = "notices"
    every = 300.0

    def __init__(self, services: Services) -> None:
        super().__init__(services.db, services.clock)
        self.services = services

    async def work(self) -> int:
        return await asyncio.to_thread(run_due, self.services)


def run_due(services: Services) -> int:
    """One pass: how many amendments were announced (owed to this region's holders),
    versions came into force and accounts were deleted."""
    now = services.clock.now()
    return (len(announce_owed(services, now)) + len(bring_into_force(services, now))
            + len(carry_out_due(services, now)))
