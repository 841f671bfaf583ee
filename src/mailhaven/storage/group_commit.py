"""Group commit: work that arrives while a transaction is being written waits for the next
one and shares it, as a database groups commits behind one fsync.

Under load many items share one transaction's statements and its commit; an idle process
writes a lone item at once, with no added wait. One batch is written at a time, in a thread.
Each caller still gets its own result (or its own exception), only after its batch is
committed; if writing a batch raises, each of its items is written alone, so that one bad
item fails only itself. Used by the send API (`sending`) and by the delivery worker's
outcomes (`delivery`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("mailhaven.storage")

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: Callable[[list[Item]], Sequence[Result | Exception]], *,
                 max_batch: int, name: str) -> None:
        """`write` commits a batch in one transaction and gives each item's result, or the
        exception that is that item's answer (a refused request)."""
        self._write_batch = write
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[:self._max_batch]
            del self._pending[:self._max_batch]
            try:
                results = await asyncio.to_thread(self._write, [item for item, _ in batch])
            except asyncio.CancelledError:  # closing: nobody may wait forever
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller went away meanwhile
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _write(self, items: list[Item]) -> list[Result | Exception]:
        try:
            return list(self._write_batch(items))
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        log.warning("%s: writing %d together failed; writing each alone", self._name, len(items))
        results: list[Result | Exception] = []
        for item in items:
            try:
                results.extend(self._write_batch([item]))
            except Exception as exc:
                results.append(exc)
        return results
