"""One loop for every background role: claim work, handle it, commit, sleep when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("mailhaven.runner")


class Runner:
    """Subclasses implement `run_once`; `run` keeps calling it until told to stop."""

    idle_seconds = 0.5
    error_seconds = 2.0
    name = "runner"

    async def run_once(self) -> int:
        """Do one round of work; return how many items were handled."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:  # a bad round must not end the process; the next one retries
                log.exception("%s: round failed", self.name)
                handled, pause = 0, self.error_seconds
            else:
                pause = self.idle_seconds
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
        await self.close()

    async def close(self) -> None:
        """Release what the runner holds (connections); called once when it stops."""
