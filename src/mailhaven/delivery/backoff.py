"""When to try again after a temporary failure."""

from __future__ import annotations

import random

FIRST_RETRY = 5 * 60
MAX_RETRY = 60 * 60
MAX_HINT = 6 * 60 * 60


def retry_delay(attempts: int, hint: float | None = None) -> float:
    """5 minutes, doubling per attempt, capped near an hour, jittered so retries spread.

    A wait the server asked for ("try again in 20 minutes") is honoured when it is longer.
    """
    base = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))
    delay = base * random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not a secret)
    if hint is not None:
        delay = max(delay, min(hint, MAX_HINT))
    return delay
