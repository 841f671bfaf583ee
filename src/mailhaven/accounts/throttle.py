"""Wrong API keys counted per client network, so that a stream of them costs little."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from mailhaven.clock import Clock

AUTH_FAILURES_PER_MINUTE = 20  # wrong keys a client network may send before 429s


class _Network:
    __slots__ = ("count", "lock", "since")

    def __init__(self, now: float) -> None:
        self.since, self.count = now, 0
        self.lock: asyncio.Lock | None = None


class FailedLogins:
    """Wrong API keys per client network, counted in this process's memory for a minute.

    Keys are 160-bit, so this is about cost and noise, not guessing: past
    `AUTH_FAILURES_PER_MINUTE`, a network's wrong keys are answered 429, one lookup at a
    time. At most `size` networks are remembered, the least recently failing forgotten
    first; a restart forgets them all. (SMTP AUTH counts its failures with it too, per
    network and per login, over a longer `window`: `submission.throttle`.)
    """

    WINDOW = 60.0

    def __init__(self, clock: Clock, limit: int = AUTH_FAILURES_PER_MINUTE,
                 size: int = 10_000, window: float = WINDOW) -> None:
        self._clock, self._limit, self._size, self._window = clock, limit, size, window
        self._networks: OrderedDict[str, _Network] = OrderedDict()

    def _current(self, network: str) -> _Network | None:
        found = self._networks.get(network)
        if found is not None and self._clock.now() - found.since >= self._window:
            del self._networks[network]
            return None
        return found

    def count(self, network: str) -> int:
        """Its failures in the current window."""
        found = self._current(network)
        return found.count if found is not None else 0

    def retry_after(self, network: str) -> float:
        """Seconds until the network's current window ends (a whole window if none)."""
        found = self._current(network)
        return self._window - (self._clock.now() - found.since) if found else self._window

    def blocked(self, network: str) -> bool:
        return self.count(network) >= self._limit

    def fail(self, network: str) -> None:
        found = self._current(network) or _Network(self._clock.now())
        found.count += 1
        self._networks[network] = found
        self._networks.move_to_end(network)
        while len(self._networks) > self._size:
            self._networks.popitem(last=False)

    def lock(self, network: str) -> asyncio.Lock:
        found = self._networks.setdefault(network, _Network(self._clock.now()))
        if found.lock is None:
            found.lock = asyncio.Lock()
        return found.lock
