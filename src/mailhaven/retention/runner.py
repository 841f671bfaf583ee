"""The scheduler's retention job: once an hour, purge what expired."""

from __future__ import annotations

import asyncio

from mailhaven.retention import service
from mailhaven.runner import Runner
from mailhaven.services import Services


class RetentionRunner(Runner):
    """Runs the purge every INTERVAL seconds of the services' clock; the purge goes in short
    batches and checks between them whether the process is stopping."""

    name = "retention"
    idle_seconds = 60.0
    INTERVAL = 3600.0

    def __init__(self, services: Services) -> None:
        self.services = services
        self.next_run = 0.0
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await super().run(stop)

    async def run_once(self) -> int:
        now = self.services.clock.now()
        if now < self.next_run:
            return 0
        await asyncio.to_thread(service.run, self.services.db, self.services.clock,
                                stopping=self._stopping)
        self.next_run = now + self.INTERVAL
        return 0  # done until the next hour: sleep

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()
