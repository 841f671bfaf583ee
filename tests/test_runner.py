"""The runner loop and its doorbell: a ring ends an idle sleep, from any thread, and none
is lost between a round and the sleep after it."""

from __future__ import annotations

import asyncio
import threading

from mailhaven.runner import Doorbell, LateBell, Runner

NEVER = 3600.0  # a poll interval the tests would never sit out


def test_a_ring_before_the_wait_is_kept_for_it() -> None:
    bell = Doorbell()
    bell.ring()

    async def run() -> tuple[bool, bool]:
        first = await asyncio.wait_for(bell.wait(NEVER), 30)
        second = await bell.wait(0.01)  # the ring was used up
        return first, second

    assert asyncio.run(run()) == (True, False)


def test_a_ring_from_another_thread_wakes_the_waiter() -> None:
    bell = Doorbell()

    async def run() -> bool:
        waiting = asyncio.ensure_future(bell.wait(NEVER))
        await asyncio.sleep(0)  # the waiter is registered
        threading.Thread(target=bell.ring).start()
        return await asyncio.wait_for(waiting, 30)

    assert asyncio.run(run()) is True


class _Counting(Runner):
    idle_seconds = NEVER

    def __init__(self, bell: Doorbell) -> None:
        self.doorbell = bell
        self.rounds = 0
        self.round_done = asyncio.Event()

    async def run_once(self) -> int:
        self.rounds += 1
        self.round_done.set()
        return 0  # nothing to do: the runner goes to sleep


def test_an_idle_runner_wakes_when_rung_and_stops_when_told() -> None:
    bell = Doorbell()

    async def run() -> int:
        runner = _Counting(bell)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.wait_for(runner.round_done.wait(), 30)
        runner.round_done.clear()
        bell.ring()
        await asyncio.wait_for(runner.round_done.wait(), 30)
        stop.set()
        await asyncio.wait_for(task, 30)
        return runner.rounds

    assert asyncio.run(run()) == 2


def test_a_late_bell_is_heard_after_its_delay_and_not_while_others_take_the_work() -> None:
    """serve's delivery worker: a ring is heard (late), unless worker processes are there."""
    others = [False]
    bell = Doorbell()
    late = LateBell(bell, 0.001, give_way=lambda: others[0])

    async def run() -> tuple[bool, bool]:
        late.ring()
        heard = await asyncio.wait_for(late.wait(NEVER), 30)
        others[0] = True
        late.ring()
        left = await late.wait(0.05)  # the ring was the workers' to take: a poll's timeout
        return heard, left

    assert asyncio.run(run()) == (True, False)


def test_a_late_bell_is_heard_at_once_while_idle_and_only_after_its_delay_while_busy() -> None:
    """serve's delivery worker alone: idle, it claims as the API rings (no batch to wait
    for); with attempts in flight, it waits so that one claim takes several sends."""
    busy = [False]
    bell = Doorbell()
    late = LateBell(bell, NEVER, busy=lambda: busy[0])

    async def rung() -> asyncio.Future[bool]:
        waiting = asyncio.ensure_future(late.wait(NEVER))
        await asyncio.sleep(0)  # the waiter is registered
        threading.Thread(target=late.ring).start()
        return waiting

    async def run() -> tuple[bool, bool]:
        idle = await asyncio.wait_for(await rung(), 30)
        busy[0] = True
        waiting = await rung()
        await asyncio.sleep(0.05)  # the ring reached the bell: the late bell sleeps its delay
        heard, _ = await asyncio.wait({waiting}, timeout=0.05)
        waiting.cancel()
        return idle, bool(heard)

    assert asyncio.run(run()) == (True, False)
