"""Rendering in worker processes: off the threads that serve every account, within a budget.

Building MIME with the email package can take long on a hostile message (a header folded
in time quadratic in its length), and a thread cannot be stopped. So messages that don't
take the quick plain path (`content.render_plain`) are rendered in a few processes of
their own: a render over its budget ends by killing its process, the API's and the
queue's threads never wait on one, and free processes go to the account with the fewest
renders running, so that one account's heavy renders delay another's by one at most.
One pool serves the whole process (`shared`): the API and the worker of `serve` alike.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

log = logging.getLogger("mailhaven.rendering")
T = TypeVar("T")

_READY = "ready"
START_SECONDS = 60.0  # a new rendering process is ready within this, or is given up on


class RenderTimeout(Exception):
    """A render ran past its budget; its process was killed."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"rendering took longer than {budget:g} seconds")
        self.budget = budget


class _Late(RenderTimeout):
    """A render that answered, but took longer than its budget: its process is fine."""


class RenderCrashed(Exception):
    """The rendering process died (out of memory?) before it answered."""


class RenderUnavailable(Exception):
    """No rendering process could be started: not the message's fault."""


def _serve(jobs: Connection, answers: Connection, preload: list[str]) -> None:
    """A rendering process: call what it is sent, send back the result or the error. It
    imports the `preload` modules (what it will be sent to run) before it says it is
    ready: never on a render's budget."""
    for module in preload:
        __import__(module)
    answers.send(_READY)
    while True:
        try:
            fn, args = jobs.recv()
        except (EOFError, OSError):
            return
        started = time.monotonic()
        try:
            answer: tuple[bool, Any, float] = (True, fn(*args), 0.0)
        except Exception as exc:
            answer = (False, exc, 0.0)
        answer = (*answer[:2], time.monotonic() - started)
        try:
            answers.send(answer)
        except OSError:  # our parent is gone (it was stopped, or it gave up on us)
            return
        except Exception:
            answers.send((False, RuntimeError(repr(answer[1])), answer[2]))


class _Process:
    """One rendering process (a fresh interpreter: nothing of ours is inherited, and no
    `__main__` is imported again) and our ends of its two pipes."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        fds: list[int] = []
        try:
            theirs_in, ours_out = os.pipe()
            fds += (theirs_in, ours_out)
            ours_in, theirs_out = os.pipe()
            fds += (ours_in, theirs_out)
            # Our sys.path, so that it finds what we found (a source checkout too).
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", __name__, str(theirs_in), str(theirs_out), *preload],
                pass_fds=(theirs_in, theirs_out), stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:  # no pipes or no process (EMFILE, EAGAIN, ENOMEM): ours
            for fd in fds:
                os.close(fd)
            raise RenderUnavailable(f"a rendering process could not start: {exc}") from exc
        os.close(theirs_in)
        os.close(theirs_out)
        self.jobs = Connection(ours_out, readable=False)
        self.answers = Connection(ours_in, writable=False)
        try:
            ready = self.answers.poll(START_SECONDS) and self.answers.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RenderUnavailable("a rendering process did not start")

    def call(self, fn: Callable, args: tuple, budget: float) -> tuple[bool, Any]:
        """(True, the result) or (False, the exception `fn` raised), within `budget`
        seconds: RenderTimeout after that, or if the render took longer by its own count
        (our thread may have looked late: the GIL is busy in a busy process)."""
        deadline = time.monotonic() + budget
        self.jobs.send((fn, args))
        if not self.answers.poll(max(0.0, deadline - time.monotonic())):
            raise RenderTimeout(budget)
        ok, value, seconds = self.answers.recv()
        if seconds > budget:
            raise _Late(budget)
        return ok, value

    def stop(self) -> None:
        """Kill it: what it is rendering (if anything) ends with RenderCrashed."""
        self.process.kill()

    def kill(self) -> None:
        self.stop()
        self.process.wait()
        self.jobs.close()
        self.answers.close()


@dataclass
class _Waiter:
    account_id: str
    loop: asyncio.AbstractEventLoop
    turn: asyncio.Future[None]


@dataclass
class _Turns:
    """Who renders next. Any loop, any thread: the API and a worker may run on different
    event loops of one process."""

    free: int
    running: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    waiting: list[_Waiter] = field(default_factory=list)  # in order of arrival
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def take(self, account_id: str) -> None:
        loop = asyncio.get_running_loop()
        with self.lock:
            if self.free and not self.waiting:
                self.free -= 1
                self.running[account_id] += 1
                return
            waiter = _Waiter(account_id, loop, loop.create_future())
            self.waiting.append(waiter)
        try:
            await waiter.turn
        except asyncio.CancelledError:
            with self.lock:
                if waiter in self.waiting:
                    self.waiting.remove(waiter)
                    raise
            self.give_back(account_id)  # the turn came as we were cancelled: pass it on
            raise

    def give_back(self, account_id: str) -> None:
        with self.lock:
            self.running[account_id] -= 1
            if not self.running[account_id]:
                del self.running[account_id]
            if not self.waiting:
                self.free += 1
                return
            # The first to arrive of the accounts with the fewest renders running.
            chosen = min(self.waiting, key=lambda w: self.running.get(w.account_id, 0))
            self.waiting.remove(chosen)
            self.running[chosen.account_id] += 1
        try:
            chosen.loop.call_soon_threadsafe(_resolve, chosen.turn)
        except RuntimeError:  # its event loop is gone, and the waiter with it
            self.give_back(chosen.account_id)


def _resolve(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


def _retrieved(call: asyncio.Future) -> None:
    """Nobody may be waiting for the outcome any more: it was seen, as far as asyncio cares."""
    if not call.cancelled():
        call.exception()


class RenderPool:
    """Up to `processes` renders at once, each in a process of its own, started when first
    needed and replaced when one was killed; each imports the `preload` modules first (the
    callers', named by them: this module imports nothing above it)."""

    def __init__(self, processes: int, preload: tuple[str, ...] = ()) -> None:
        self._preload = preload
        self._turns = _Turns(free=processes)
        # A thread per process, to wait on its pipe: never more busy than renders running.
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="mailhaven-render")
        self._idle: list[_Process] = []
        self._busy: set[_Process] = set()
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, account_id: str, budget: float, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a rendering process, when it is `account_id`'s turn; raises
        RenderTimeout after `budget` seconds, or what `fn` raised. `fn` and `args` must
        pickle (module-level functions, plain data)."""
        await self._turns.take(account_id)
        try:
            call = asyncio.get_running_loop().run_in_executor(
                self._threads, self._call, account_id, budget, fn, args)
        except BaseException:
            self._turns.give_back(account_id)
            raise
        # A caller that gives up (its own deadline) leaves the render to end, or to be
        # killed at its budget: the turn and the process come back either way.
        call.add_done_callback(_retrieved)
        return await asyncio.shield(call)

    def _call(self, account_id: str, budget: float, fn: Callable[..., T], args: tuple) -> T:
        process: _Process | None = None
        answered = False
        try:
            process = self._take()
            ok, value = process.call(fn, args, budget)
            answered = True
        except _Late:
            answered = True
            log.warning("a render took longer than its budget of %gs", budget)
            raise
        except RenderTimeout:
            log.warning("a render ran past its budget of %gs; its process was killed", budget)
            raise
        except (EOFError, OSError) as exc:
            raise RenderCrashed("the rendering process died before it answered") from exc
        finally:
            if process is not None:
                self._put_back(process, keep=answered)
            self._turns.give_back(account_id)
        if not ok:
            raise value
        return value

    def _take(self) -> _Process:
        with self._lock:
            if self._closed:
                raise RuntimeError("the render pool is closed")
            process = self._idle.pop() if self._idle else None
        process = process or _Process(self._preload)
        with self._lock:
            self._busy.add(process)
        return process

    def _put_back(self, process: _Process, *, keep: bool) -> None:
        """Keep a process that answered; kill one that didn't (its render may still run)."""
        with self._lock:
            self._busy.discard(process)
            keep = keep and not self._closed
            if keep:
                self._idle.append(process)
        if not keep:
            process.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, busy, self._idle = self._idle, list(self._busy), []
        for process in idle:
            process.kill()
        for process in busy:  # its render ends with RenderCrashed, and its thread with it
            process.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)


_shared: RenderPool | None = None
_shared_lock = threading.Lock()


def shared(processes: int, preload: tuple[str, ...] = ()) -> RenderPool:
    """The process's render pool, with `processes` processes (as first asked for)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = RenderPool(processes, preload)
            atexit.register(_shared.close)
        return _shared


if __name__ == "__main__":  # a rendering process: python -m mailhaven.messages.renderer IN OUT
    _serve(Connection(int(sys.argv[1]), writable=False),
           Connection(int(sys.argv[2]), readable=False), sys.argv[3:])
