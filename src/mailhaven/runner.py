"""One loop for every background role: claim work, handle it, commit, sleep when idle; and
periodic jobs on it, taken in turn by the processes that share the database."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable

from mailhaven.clock import Clock
from mailhaven.errors import frames
from mailhaven.storage import periodic
from mailhaven.storage.db import Database, outage

log = logging.getLogger("mailhaven.runner")


class Doorbell:
    """Rung when work that a runner of this process can take at once was committed (the API
    accepted a message), so that the runner wakes instead of sleeping out its poll interval.

    Any thread may ring; one runner listens. A ring while the runner is busy is kept, so its
    next sleep ends at once: no ring is lost between a round that found nothing and the
    sleep after it. Runners in other processes (`mailhaven worker`) still poll.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rung = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def ring(self) -> None:
        with self._lock:
            self._rung = True
            waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        loop, future = waiter
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            _resolve(future)
        else:
            with contextlib.suppress(RuntimeError):  # that loop closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, timeout: float) -> bool:
        """Sleep until rung (or rung since the last wait) or for `timeout` seconds; whether
        it rang."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._rung:
                self._rung = False
                return True
            self._waiter = (loop, future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                rung, self._rung = self._rung, False
                if self._waiter is not None and self._waiter[1] is future:
                    self._waiter = None
        return rung


class LateBell(Doorbell):
    """Another doorbell, heard `delay` seconds after it rings while `busy()` (always, without
    it), and not at all while `give_way()` says others take the work: for a runner that
    should leave it to others woken by the same ring (serve's delivery worker to `mailhaven
    worker` processes, which hear the commit through `storage.queued`), and, busy, take more
    at once when it does. An idle runner hears it at once: there is no batch to wait for,
    and the delay would fall on every copy of a steady, moderate flow."""

    def __init__(self, bell: Doorbell, delay: float,
                 give_way: Callable[[], bool] | None = None,
                 busy: Callable[[], bool] | None = None) -> None:
        self.bell, self.delay, self.give_way, self.busy = bell, delay, give_way, busy

    def ring(self) -> None:
        self.bell.ring()

    async def wait(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not await self.bell.wait(max(0.0, deadline - loop.time())):
                return False
            if self.give_way is None or not self.give_way():
                if self.busy is None or self.busy():
                    await asyncio.sleep(self.delay)
                return True
            if loop.time() >= deadline:  # others take it; the poll still looks
                return False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Runner:
    """Subclasses implement `run_once`; `run` keeps calling it until told to stop."""

    idle_seconds = 0.5
    error_seconds = 2.0
    name = "runner"
    doorbell: Doorbell | None = None  # ends an idle sleep early when rung

    async def run_once(self) -> int:
        """Do one round of work; return how many items were handled."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception as exc:  # a bad round must not end the process; the next retries
                if not outage.refused(self.name, exc):  # an outage is logged once, not per round
                    log.error("%s: round failed: %s", self.name, frames(exc))
                await self._sleep(stop, self.error_seconds, None)
            else:
                if not handled:
                    await self._sleep(stop, self.idle_seconds, self.doorbell)
        await self.close()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float, doorbell: Doorbell | None) -> None:
        """Until `stop`, the doorbell, or `seconds` have passed, whichever comes first."""
        waits: list[asyncio.Future[bool]] = [asyncio.ensure_future(stop.wait())]
        if doorbell is not None:
            waits.append(asyncio.ensure_future(doorbell.wait(seconds)))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def close(self) -> None:
        """Release what the runner holds (connections); called once when it stops."""


class PeriodicJob(Runner):
    """A job run every `every` seconds by one process at a time, of all the processes that
    share the database (`storage.periodic`): each run is recorded as it starts, so a restart
    or a second process does not run it again before its time. Subclasses implement `work`;
    the runner's `name` names the job."""

    every = 3600.0
    longest: float | None = None  # a run not finished by then is taken for dead (default: every)
    after_failure = 300.0  # a failed run is tried again this much later (at most `every`)
    idle_seconds = 60.0  # how often a process looks whether the job is due

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._stop: asyncio.Event | None = None

    async def work(self) -> int:
        """One run of the job; how many items it handled."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await super().run(stop)

    async def run_once(self) -> int:
        turn = await asyncio.to_thread(periodic.take_turn, self.db, self.name, every=self.every,
                                       now=self.clock.now(), longest=self.longest)
        if turn is None:
            return 0
        try:
            handled = await self.work()
        except Exception:  # failed: again after a pause, by whichever process comes first
            retry_at = self.clock.now() + min(self.after_failure, self.every)
            await asyncio.to_thread(functools.partial(turn.give_back, retry_at=retry_at))
            raise
        except BaseException:  # cancelled: due again at once
            await asyncio.to_thread(turn.give_back)
            raise
        if self.stopping():  # cut short between batches: the rest is due at the next start
            await asyncio.to_thread(turn.give_back)
        else:
            await asyncio.to_thread(turn.finish, self.clock.now())
        return handled

    def stopping(self) -> bool:
        """Whether the process is stopping: a long run checks it between batches."""
        return self._stop is not None and self._stop.is_set()
