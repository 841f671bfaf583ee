"""Writing what a claim's work came to through a database outage, for every leased queue.

A copy the recipient's server took, a POST its receiver answered 2xx: that happened, out
there, whether or not the database can record it now. If the write fails because the
database went away, the outcome is kept in memory and offered again every few seconds for
as long as the claim lasts, so the work is not done a second time once the lease runs out,
and an item whose database comes back soon does not wait out its lease for nothing. The
delivery worker, the webhook, route-POST and Article 19 senders and the inbound processor
all write through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mailhaven.clock import monotonic
from mailhaven.storage.db import outage

T = TypeVar("T")
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 10.0  # seconds between offers, doubling


async def written_through_outage(write: Callable[[], Awaitable[T]], *, where: str,
                                 seconds: float) -> T:
    """What `write()` returns; while it fails because the database is out
    (`storage.db.is_unavailable`) it is called again, for up to `seconds` (what is left of
    the claim's lease: past it another claim may hold the item). The outage is counted in
    the process's one outage log line (`where` names the role), not logged per attempt.
    Any other failure, or an outage that outlasts `seconds`, is raised."""
    give_up = monotonic() + seconds
    pause = FIRST_PAUSE
    while True:
        try:
            result = await write()
        except Exception as exc:
            if monotonic() + pause > give_up or not outage.refused(where, exc):
                raise
        else:
            outage.answered()
            return result
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)
