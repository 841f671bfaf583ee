"""The scheduler's retention job: once an hour, purge what expired."""

from __future__ import annotations

import asyncio

from mailhaven.retention import service
from mailhaven.runner import PeriodicJob
from mailhaven.services import Services


class RetentionRunner(PeriodicJob):
    """Runs the purge every hour of the services' clock, in one process of all that share
    the database; the purge goes in short batches and checks between them whether the
    process is stopping."""

    name = "retention"
    every = 3600.0

    def __init__(self, services: Services) -> None:
        super().__init__(services.db, services.clock)
        self.settings = services.settings

    async def work(self) -> int:
        await asyncio.to_thread(service.run, self.db, self.clock, stopping=self.stopping,
                                settings=self.settings)
        return 0  # done until the next hour: sleep
