"""The background deletion of erased subjects' rows (issue 17): an erasure destroys their
keys in the request, and this job deletes what those keys left unreadable."""

from __future__ import annotations

import asyncio

from mailhaven.privacy import erasure
from mailhaven.runner import PeriodicJob
from mailhaven.services import Services


class ErasureDeleter(PeriodicJob):
    """Deletes the rows of every erasure the ledger says is pending (`rows_deleted_at`
    NULL), in batches of `erasure.BATCH` rows per transaction, in one process of all that
    share the database. Looks every few seconds without writing anything when nothing is
    pending; a run cut short (the process stopping between batches, or killed) leaves the
    rest to the next run."""

    name = "erasure-deletion"
    every = 5.0
    idle_seconds = 5.0
    longest = 600.0

    def __init__(self, services: Services) -> None:
        super().__init__(services.db, services.clock)

    async def run_once(self) -> int:
        if not await asyncio.to_thread(self._pending):
            return 0
        return await super().run_once()

    def _pending(self) -> bool:
        with self.db.sessions() as session:
            return bool(erasure.pending(session))

    async def work(self) -> int:
        await asyncio.to_thread(erasure.run_pending, self.db, self.clock,
                                stopping=self.stopping)
        return 0  # all done (or stopping): sleep until the next look
