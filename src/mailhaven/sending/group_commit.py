"""Group commit of the send API: requests that arrive while a transaction is being written
wait for the next one, and go to the database together.

Each request still gets its answer only after its message is committed, and one request's
error is only its own (`send_all`). Under load, many sends share one transaction's
statements and its commit, as database group commit shares an fsync; an idle server sends
each request alone at once. One batch is written at a time per process: SQLite has one
writer anyway, and on PostgreSQL a batch is a few statements, not one per message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial

from mailhaven.http import in_thread
from mailhaven.sending.service import Accepted, SendAttempt, send_all
from mailhaven.services import Services

MAX_BATCH = 32  # a bound on how long one transaction holds SQLite's write lock


@dataclass
class GroupCommit:
    services: Services
    _waiting: list[tuple[SendAttempt, asyncio.Future]] = field(default_factory=list)
    _writer: asyncio.Task | None = None

    async def send(self, attempt: SendAttempt) -> Accepted:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((attempt, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        services = self.services
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                write = partial(send_all, services.db, services.vault,
                                [attempt for attempt, _ in batch], clock=services.clock,
                                require_verified=services.settings.require_verified_domains)
                try:
                    outcomes = await in_thread(write)
                except BaseException as exc:  # cancelled: nobody may wait forever
                    for _, future in batch + self._waiting:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its client went away; the message is committed
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writer = None
