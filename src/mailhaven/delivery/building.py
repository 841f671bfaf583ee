"""What the worker keeps for building copies: room for big messages, and shared payloads."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from mailhaven.messages.payloads import Light

BIG_BYTES = 1 << 20  # a copy this large waits for room; smaller ones never do
ROOM_BYTES = 64 << 20  # big messages' bytes built and sent at once, per worker
LIGHTS_BYTES = 64 << 20  # encoded payloads kept for the next copies of their messages
LIGHTS_KEPT = 64  # messages whose payloads are kept, at most


class Room:
    """Room for big copies, counted in bytes, first come first served: each is in memory
    several times over while it is rendered, signed and sent (aiosmtplib copies it too),
    so a 24 MB attachment to ten recipients goes out a couple at a time, not all at once.
    A copy larger than all the room waits for all of it."""

    def __init__(self, capacity: int = ROOM_BYTES) -> None:
        self.free = self.capacity = capacity
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def held(self, size: int) -> AsyncIterator[None]:
        if size < BIG_BYTES:
            yield
            return
        need = min(size, self.capacity)
        if self._waiting or self.free < need:
            entry = (need, asyncio.get_running_loop().create_future())
            self._waiting.append(entry)
            try:
                await entry[1]
            except asyncio.CancelledError:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    self._release(0)  # those behind it may fit now
                elif not entry[1].cancelled():
                    self._release(need)  # granted as it was cancelled
                raise
        else:
            self.free -= need
        try:
            yield
        finally:
            self._release(need)

    def _release(self, size: int) -> None:
        self.free += size
        while self._waiting and self._waiting[0][0] <= self.free:
            need, granted = self._waiting.popleft()
            self.free -= need
            granted.set_result(None)


class Lights:
    """The light form of the messages being delivered, by storage key: a message's
    payloads are encoded once for all its copies (`payloads.lighten`, in a thread)."""

    def __init__(self, capacity: int = LIGHTS_BYTES, kept: int = LIGHTS_KEPT) -> None:
        self._capacity, self._kept = capacity, kept
        self._lights: OrderedDict[str, asyncio.Future[Light]] = OrderedDict()

    async def get(self, key: str, make: Callable[[], asyncio.Future[Light]]) -> Light:
        light = self._lights.get(key)
        if light is None:
            light = self._lights[key] = make()
            light.add_done_callback(lambda _: self._trim())
        else:
            self._lights.move_to_end(key)
        return await asyncio.shield(light)

    def _trim(self) -> None:
        """Drop failures (they may succeed next time) and the least recently used, down to
        the bounds; a payload still being encoded counts nothing yet."""
        for key, light in list(self._lights.items()):
            if light.done() and (light.cancelled() or light.exception() is not None):
                del self._lights[key]
        size = sum(f.result().size for f in self._lights.values() if f.done())
        while self._lights and (size > self._capacity or len(self._lights) > self._kept):
            _, oldest = self._lights.popitem(last=False)
            size -= oldest.result().size if oldest.done() else 0
