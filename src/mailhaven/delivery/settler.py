"""Group commit: the outcomes of attempts that end together are recorded in one transaction."""

from __future__ import annotations

import asyncio
import logging

from mailhaven.clock import Clock
from mailhaven.delivery import queue
from mailhaven.storage.db import Database
from mailhaven.vault import Vault

log = logging.getLogger("mailhaven.delivery")

MAX_BATCH = 200  # outcomes in one transaction, at most


class Settler:
    """Outcomes that arrive while a transaction is being written wait for the next one and
    share it, as a database groups commits: one commit (one fsync on PostgreSQL) and a few
    statements for many copies, with no added wait when mail is slow (a lone outcome goes
    at once). Each attempt still learns whether its own outcome was recorded."""

    def __init__(self, db: Database, vault: Vault, clock: Clock, *,
                 max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock
        self._max_batch = max_batch
        self._pending: list[tuple[queue.Outcome, asyncio.Future[dict | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def settle(self, outcome: queue.Outcome) -> dict | None:
        """Record `outcome`; its event, or None if the copy's lease was lost meanwhile.
        Raises if it could not be recorded (the lease runs out and the copy is retried)."""
        future: asyncio.Future[dict | None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[:self._max_batch]
            del self._pending[:self._max_batch]
            try:
                results = await asyncio.to_thread(self._write, [o for o, _ in batch])
            except asyncio.CancelledError:  # closing: an outcome not written is retried later
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its attempt was cancelled meanwhile
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _write(self, outcomes: list[queue.Outcome]) -> list[dict | None | Exception]:
        try:
            return list(queue.settle_all(self._db, self._vault, outcomes,
                                         now=self._clock.now()))
        except Exception:
            if len(outcomes) == 1:
                raise
        # One bad outcome must not keep the others from being recorded: each on its own.
        log.warning("settling %d outcomes together failed; settling each alone", len(outcomes))
        results: list[dict | None | Exception] = []
        for outcome in outcomes:
            try:
                results.extend(queue.settle_all(self._db, self._vault, [outcome],
                                                now=self._clock.now()))
            except Exception as exc:
                results.append(exc)
        return results
