"""Clients from addresses loopback can't give: a connection as the event loop hands it to
a protocol (asyncio's transport, nothing of ours), from any address. For counting sessions
per IPv6 /64, whose several addresses a test machine doesn't hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Peer(asyncio.Transport):
    """A TCP connection from `address` to `protocol`, as the loop makes one: what the
    protocol writes is kept in `said`; closing it tells the protocol, as the loop would."""

    def __init__(self, protocol: asyncio.Protocol, address: str) -> None:
        super().__init__({"peername": (address, 40000, 0, 0)})
        self.protocol, self.said, self.closed = protocol, bytearray(), False
        protocol.connection_made(self)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.said += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def greeting(self) -> str:
        """The first line the server sends (its banner, or a refusal)."""
        deadline = time.monotonic() + 30
        while b"\r\n" not in self.said:
            assert time.monotonic() < deadline, "no greeting"
            await asyncio.sleep(0.01)
        return self.said.split(b"\r\n", 1)[0].decode()


async def a_network_shares_its_sessions_and_the_door_has_a_cap(
        protocol: Callable[[], asyncio.Protocol], refusal: str) -> None:
    """With 2 sessions per client network and 3 in all: two addresses of one IPv6 /64
    take its share, a third of them is refused, another /64 gets in and fills the door,
    after which anyone is refused; one leaving lets its network in again."""
    first = [Peer(protocol(), "2001:db8:1:2::a"), Peer(protocol(), "2001:db8:1:2::b")]
    assert [(await peer.greeting())[:4] for peer in first] == ["220 "] * 2
    same = Peer(protocol(), "2001:db8:1:2:ffff::1")  # the same /64
    assert (await same.greeting(), same.closed) == (refusal, True)
    other = Peer(protocol(), "2001:db8:1:3::a")  # another /64: counted apart
    assert (await other.greeting())[:4] == "220 "
    full = Peer(protocol(), "192.0.2.1")  # the door holds 3
    assert (await full.greeting(), full.closed) == (refusal, True)
    first[0].close()
    await asyncio.sleep(0.01)  # the loop tells the protocol
    again = Peer(protocol(), "2001:db8:1:2::c")
    assert (await again.greeting())[:4] == "220 "
    for peer in (first[1], other, again):
        peer.close()
    await asyncio.sleep(0.01)
