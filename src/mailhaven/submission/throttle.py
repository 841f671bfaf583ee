"""Failed SMTP logins, counted per client network and per login, to slow and stop guessing.

SMTP passwords are chosen by people (Mailgun allows five characters), so guessing them is
worth bounding, without handing an attacker a way to lock a real sender out:

- every failed AUTH is answered late, later the more that network failed lately, and one
  at a time per network once it has failed: parallel connections guess no faster (a
  login's own network, below, doesn't wait behind them);
- a network past `NETWORK_LIMIT` failures in `WINDOW` is answered 454 without a look at
  the password, until its failures are `WINDOW` old;
- a login past `LOGIN_LIMIT` failures in `WINDOW`, from anywhere, is answered 454 the same
  way — but never to a network that logged in as it within `TRUSTED_FOR`: the sender's own
  servers keep working while someone else guesses its password, and a sender on a new
  address waits at most `WINDOW`.

Counts live in this process's memory, at most `size` networks and logins each (the least
recently failing forgotten first); a restart forgets them. So do the networks known to
logins: at most `size` (network, login) pairs, at most `TRUSTED_PER_NETWORK` of them per
network (its least recent forgotten first), so that one client logging in with many
logins of its own can't push everyone else's out.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from mailhaven.accounts.throttle import FailedLogins
from mailhaven.clock import Clock

WINDOW = 15 * 60.0
NETWORK_LIMIT = 20  # failures a client network may have in WINDOW before 454s
LOGIN_LIMIT = 10  # failures a login may have in WINDOW (from networks it doesn't know)
TRUSTED_FOR = 24 * 3600.0  # a network that logged in as a login is known to it this long
DELAY_STEP = 0.5  # seconds added to a failure's answer per recent failure of its network
MAX_DELAY = 5.0
IN_FLIGHT_PER_NETWORK = 8  # AUTH attempts of one network being checked at once
IN_FLIGHT_PER_LOGIN = 4  # ...and of one login
TRUSTED_PER_NETWORK = 16  # logins a network is remembered to know at most


class AuthThrottle:
    def __init__(self, clock: Clock, *, network_limit: int = NETWORK_LIMIT,
                 login_limit: int = LOGIN_LIMIT, delay_step: float = DELAY_STEP,
                 size: int = 10_000) -> None:
        self._clock, self._delay_step, self._size = clock, delay_step, size
        self._network_limit, self._login_limit = network_limit, login_limit
        self._networks = FailedLogins(clock, network_limit, size, window=WINDOW)
        self._logins = FailedLogins(clock, login_limit, size, window=WINDOW)
        # network -> login -> when it last logged in as it; least recent network first
        self._trusted: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._trusted_pairs = 0
        self._checking: Counter[tuple[str, str]] = Counter()  # attempts in flight, by key

    def refused(self, network: str, login: str) -> str | None:
        """Why an AUTH from `network` as `login` is answered 454 without checking it
        ("network" or "login"), or None. Attempts still being checked count as failures
        until they succeed: parallel attempts can't all slip past a limit not yet reached."""
        if self._is_trusted(network, login, self._clock.now()):
            return None
        if (self._networks.count(network) + self._checking["network", network]
                >= self._network_limit):
            return "network"
        login = login.lower()
        if self._logins.count(login) + self._checking["login", login] >= self._login_limit:
            return "login"
        return None

    @asynccontextmanager
    async def attempt(self, network: str, login: str) -> AsyncIterator[str | None]:
        """Held while an AUTH from `network` as `login` is checked and answered; gives why
        it is refused at once (as `refused`, or "busy-network"/"busy-login" past
        `IN_FLIGHT` attempts at a time), or None. Checking and counting it happen with
        no await between, so no other attempt can see the count without this one."""
        refused, login = self.refused(network, login), login.lower()
        # A login's own network (an application opening many connections at once, its
        # password remembered) is never turned away for being busy; strangers are.
        known = self._is_trusted(network, login, self._clock.now())
        if (refused is None and not known
                and self._checking["network", network] >= IN_FLIGHT_PER_NETWORK):
            refused = "busy-network"
        if (refused is None and not known
                and self._checking["login", login] >= IN_FLIGHT_PER_LOGIN):
            refused = "busy-login"
        if refused is not None:
            yield refused
            return
        keys = [("network", network), ("login", login)]
        self._checking.update(keys)
        try:
            async with self._turn(network, login):
                yield None
        finally:
            self._checking.subtract(keys)
            for key in keys:
                if self._checking[key] <= 0:
                    del self._checking[key]

    def _turn(self, network: str, login: str) -> AbstractAsyncContextManager[object]:
        """One attempt at a time for a network that failed lately, any number for the
        others and for a login's own network."""
        if (not self._networks.count(network)
                or self._is_trusted(network, login, self._clock.now())):
            return nullcontext()
        return self._networks.lock(network)

    def failed(self, network: str, login: str) -> float:
        """Count a failure; how long to wait before answering it."""
        self._networks.fail(network)
        self._logins.fail(login.lower())
        return min(MAX_DELAY, self._delay_step * self._networks.count(network))

    def succeeded(self, network: str, login: str) -> None:
        logins = self._trusted.setdefault(network, OrderedDict())
        self._trusted.move_to_end(network)
        login = login.lower()
        self._trusted_pairs += login not in logins
        logins[login] = self._clock.now()
        logins.move_to_end(login)
        if len(logins) > TRUSTED_PER_NETWORK:
            logins.popitem(last=False)
            self._trusted_pairs -= 1
        while self._trusted_pairs > self._size:
            _, forgotten = self._trusted.popitem(last=False)
            self._trusted_pairs -= len(forgotten)

    def _is_trusted(self, network: str, login: str, now: float) -> bool:
        logins = self._trusted.get(network)
        since = logins.get(login.lower()) if logins is not None else None
        return since is not None and now - since < TRUSTED_FOR
