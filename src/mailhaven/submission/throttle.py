"""Failed SMTP logins, counted per client network and per login, to slow and stop guessing.

SMTP passwords are chosen by people (Mailgun allows five characters), so guessing them is
worth bounding, without handing an attacker a way to lock a real sender out:

- every failed AUTH is answered late, later the more that network failed lately, and one
  at a time per network once it has failed: parallel connections guess no faster;
- a network past `NETWORK_LIMIT` failures in `WINDOW` is answered 454 without a look at
  the password, until its failures are `WINDOW` old;
- a login past `LOGIN_LIMIT` failures in `WINDOW`, from anywhere, is answered 454 the same
  way — but never to a network that logged in as it within `TRUSTED_FOR`: the sender's own
  servers keep working while someone else guesses its password, and a sender on a new
  address waits at most `WINDOW`.

Counts live in this process's memory, at most `size` networks and logins each (the least
recently failing forgotten first); a restart forgets them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager, nullcontext

from mailhaven.clock import Clock

WINDOW = 15 * 60.0
NETWORK_LIMIT = 20  # failures a client network may have in WINDOW before 454s
LOGIN_LIMIT = 10  # failures a login may have in WINDOW (from networks it doesn't know)
TRUSTED_FOR = 24 * 3600.0  # a network that logged in as a login is known to it this long
DELAY_STEP = 0.5  # seconds added to a failure's answer per recent failure of its network
MAX_DELAY = 5.0


class _Failures:
    __slots__ = ("count", "lock", "since")

    def __init__(self, now: float) -> None:
        self.since, self.count = now, 0
        self.lock: asyncio.Lock | None = None


class _Counter:
    """Failures per key in windows of WINDOW seconds from each key's first failure."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def current(self, key: str, now: float) -> _Failures | None:
        found = self._keys.get(key)
        if found is not None and now - found.since >= WINDOW:
            del self._keys[key]
            return None
        return found

    def count(self, key: str, now: float) -> int:
        found = self.current(key, now)
        return found.count if found is not None else 0

    def add(self, key: str, now: float) -> None:
        found = self.current(key, now) or _Failures(now)
        found.count += 1
        self._keys[key] = found
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)


class AuthThrottle:
    def __init__(self, clock: Clock, *, network_limit: int = NETWORK_LIMIT,
                 login_limit: int = LOGIN_LIMIT, delay_step: float = DELAY_STEP,
                 size: int = 10_000) -> None:
        self._clock, self._delay_step, self._size = clock, delay_step, size
        self._network_limit, self._login_limit = network_limit, login_limit
        self._networks = _Counter(size)
        self._logins = _Counter(size)
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def refused(self, network: str, login: str) -> str | None:
        """Why an AUTH from `network` as `login` is answered 454 without checking it
        ("network" or "login"), or None."""
        now = self._clock.now()
        if self._is_trusted(network, login, now):
            return None
        if self._networks.count(network, now) >= self._network_limit:
            return "network"
        if self._logins.count(login.lower(), now) >= self._login_limit:
            return "login"
        return None

    def turn(self, network: str) -> AbstractAsyncContextManager[object]:
        """Held while an AUTH from `network` is checked and answered: one at a time for a
        network that failed lately, any number for the others."""
        found = self._networks.current(network, self._clock.now())
        if found is None:
            return nullcontext()
        if found.lock is None:
            found.lock = asyncio.Lock()
        return found.lock

    def failed(self, network: str, login: str) -> float:
        """Count a failure; how long to wait before answering it."""
        now = self._clock.now()
        self._networks.add(network, now)
        self._logins.add(login.lower(), now)
        return min(MAX_DELAY, self._delay_step * self._networks.count(network, now))

    def succeeded(self, network: str, login: str) -> None:
        key = (network, login.lower())
        self._trusted[key] = self._clock.now()
        self._trusted.move_to_end(key)
        while len(self._trusted) > self._size:
            self._trusted.popitem(last=False)

    def _is_trusted(self, network: str, login: str, now: float) -> bool:
        since = self._trusted.get((network, login.lower()))
        return since is not None and now - since < TRUSTED_FOR
