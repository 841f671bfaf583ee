"""Per-destination shaping: how many sessions and messages a minute each MX host gets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from mailhaven.clock import Clock
from mailhaven.delivery.replies import DeliveryFailure, SmtpReply
from mailhaven.shaping_rules import Rule, rule_for

log = logging.getLogger("mailhaven.delivery")

SLOWDOWNS = Counter("mailhaven_delivery_slowdowns_total",
                    "Destinations slowed down after a 421 or a rate-limit reply", ["rule"])
SLOWED = Gauge("mailhaven_delivery_slowed_destinations",
               "Destinations running below their rule's limits", ["rule"])
HELD = Counter("mailhaven_delivery_held_total",
               "Copies put back untried because their destination was at a limit",
               ["rule", "limit"])

WINDOW = 60.0  # per-minute limits count the admissions of the last minute
WAIT_SECONDS = 5.0  # a copy waits here for a session it can expect within this, else is held
MIN_HOLD = 1.0  # a copy held back is due again no sooner than this…
MAX_HOLD = 3600.0  # …nor later: the pace is an estimate, and claiming a copy again is cheap
FIRST_SESSION_GUESS = 1.0  # seconds one message keeps a connection busy, until measured
DESTINATIONS_MAX = 10_000


















# -- the shaper -------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    connections: int
    per_minute: int | None


class Held(Exception):
    """The destination is at a limit: put the copy back, untried, due at `due`."""

    def __init__(self, destination: str, due: float) -> None:
        super().__init__(f"{destination} is at its limit until {due:.0f}")
        self.destination = destination
        self.due = due


@dataclass
class _Destination:
    rule: Rule
    connections: float  # the effective limits: the rule's, or less after a slow-down
    per_minute: float | None
    in_flight: int = 0
    sent: deque[float] = field(default_factory=deque)  # admissions of the last minute
    session_seconds: float = FIRST_SESSION_GUESS
    next_turn: float = 0.0  # where the next copy held back goes in line
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    epoch: int = 0  # slow-downs so far: sessions admitted before the last one don't count

    def limits(self) -> Limits:
        return Limits(max(1, int(self.connections)),
                      None if self.per_minute is None else max(1, int(self.per_minute)))

    @property
    def slowed(self) -> bool:
        return (self.connections < self.rule.connections
                or self.per_minute is not None and self.per_minute < (self.rule.per_minute or 0))

    def worth_waiting(self, limits: Limits) -> bool:
        """One more copy can expect a session soon: waiting here is cheaper than a round trip
        through the queue, and ties up the worker only briefly."""
        ahead = len(self.waiters) + 1
        return ahead * self.session_seconds / limits.connections <= WAIT_SECONDS

    def idle(self, now: float) -> bool:
        return (self.in_flight == 0 and not self.waiters and self.next_turn <= now
                and not (self.sent and self.sent[-1] > now - WINDOW))


class Shaper:
    """Limits for each MX host, in this worker process: sessions at once and messages a
    minute as its rule says, halved when the host asks us to slow down, regained (AIMD)
    one success at a time."""

    def __init__(self, rules: Iterable[Rule], clock: Clock) -> None:
        self._rules = tuple(rules)
        self._clock = clock
        self._destinations: dict[str, _Destination] = {}

    def limits(self, host: str) -> Limits:
        """What `host` gets now."""
        return self._destination(host.lower()).limits()

    @asynccontextmanager
    async def session(self, host: str) -> AsyncIterator[None]:
        """Hold one of `host`'s sessions for the block, or raise `Held` if it has none free;
        a failure that asks us to slow down slows `host` down, a delivery speeds it up."""
        host = host.lower()
        dest = self._destination(host)
        epoch = await self._admit(host, dest)
        started = time.monotonic()
        try:
            yield
        except DeliveryFailure as failure:
            if failure.slow_down and epoch == dest.epoch:
                self._slow_down(dest, failure.reply)
            raise
        else:
            self._delivered(dest, time.monotonic() - started)
        finally:
            dest.in_flight -= 1
            _wake_next(dest)

    def _destination(self, host: str) -> _Destination:
        dest = self._destinations.get(host)
        if dest is None:
            if len(self._destinations) >= DESTINATIONS_MAX:  # a long-lived worker meets many
                self._forget_idle()
            rule = rule_for(self._rules, host)
            dest = self._destinations[host] = _Destination(
                rule, float(rule.connections),
                None if rule.per_minute is None else float(rule.per_minute))
        return dest

    def _forget_idle(self) -> None:
        now = self._clock.now()
        for host, dest in list(self._destinations.items()):
            if dest.idle(now):
                if dest.slowed:
                    SLOWED.labels(dest.rule.mx).dec()
                del self._destinations[host]

    async def _admit(self, host: str, dest: _Destination) -> int:
        deadline = time.monotonic() + 2 * WAIT_SECONDS  # in case the estimate was wrong
        while True:
            now = self._clock.now()
            while dest.sent and dest.sent[0] <= now - WINDOW:
                dest.sent.popleft()
            limits = dest.limits()
            busy = dest.in_flight >= limits.connections
            rated = limits.per_minute is not None and len(dest.sent) >= limits.per_minute
            if not (busy or rated):
                dest.in_flight += 1
                if limits.per_minute is not None:
                    dest.sent.append(now)
                return dest.epoch
            if rated or not dest.worth_waiting(limits) or not await _wait(dest, deadline):
                raise self._hold(host, dest, now, limits, rated=rated)

    @staticmethod
    def _hold(host: str, dest: _Destination, now: float, limits: Limits, *,
              rated: bool) -> Held:
        # Copies held back queue up at the pace the destination takes them, so a backlog
        # comes back a little at a time, not all at once again.
        pace = dest.session_seconds / limits.connections
        due = max(now + MIN_HOLD, dest.next_turn)
        if limits.per_minute is not None:
            pace = max(pace, WINDOW / limits.per_minute)
            if rated:
                due = max(due, dest.sent[len(dest.sent) - limits.per_minute] + WINDOW)
        due = min(due, now + MAX_HOLD)
        dest.next_turn = due + pace
        HELD.labels(dest.rule.mx, "per_minute" if rated else "connections").inc()
        return Held(host, due)

    def _slow_down(self, dest: _Destination, reply: SmtpReply) -> None:
        # Sessions already open when this one failed will likely fail too: one halving for
        # them all, as TCP halves its window once per loss event.
        dest.epoch += 1
        before, was_slowed = dest.limits(), dest.slowed
        dest.connections = max(1.0, dest.connections / 2)
        if dest.per_minute is not None:
            dest.per_minute = max(1.0, dest.per_minute / 2)
        if dest.limits() == before:
            return
        SLOWDOWNS.labels(dest.rule.mx).inc()
        if not was_slowed:
            SLOWED.labels(dest.rule.mx).inc()
        self._log(dest, "slowed", code=reply.code, enhanced=reply.enhanced)

    def _delivered(self, dest: _Destination, seconds: float) -> None:
        dest.session_seconds += 0.2 * (min(seconds, WINDOW) - dest.session_seconds)
        if not dest.slowed:
            return
        dest.connections = min(dest.rule.connections, dest.connections + 1 / dest.connections)
        if dest.per_minute is not None and dest.rule.per_minute is not None:
            dest.per_minute = min(dest.rule.per_minute, dest.per_minute + 1)
        if not dest.slowed:
            SLOWED.labels(dest.rule.mx).dec()
            self._log(dest, "recovered")

    @staticmethod
    def _log(dest: _Destination, state: str, **reply: object) -> None:
        limits = dest.limits()
        # The rule, not the host (it names the recipient's domain); the reply's code only: its
        # text may name a recipient. Logs hold no personal data.
        log.info(json.dumps({
            "kind": "shaping", "rule": dest.rule.mx, "state": state,
            "connections": limits.connections, "per-minute": limits.per_minute,
            **({"code": reply["code"], "enhanced-code": reply["enhanced"]} if reply else {}),
        }))


async def _wait(dest: _Destination, deadline: float) -> bool:
    """Wait until a session of `dest` ends; False when `deadline` came first."""
    waiter = asyncio.get_running_loop().create_future()
    dest.waiters.append(waiter)
    woken = False
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await waiter
        woken = True
    except TimeoutError:
        pass
    finally:
        if woken:
            pass
        elif waiter.done() and not waiter.cancelled():
            _wake_next(dest)  # it was this one's turn, but it is leaving: pass it on
        else:
            waiter.cancel()
            dest.waiters.remove(waiter)
    return woken


def _wake_next(dest: _Destination) -> None:
    while dest.waiters:
        waiter = dest.waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
