"""End-to-end latency: from `POST /v3/{domain}/messages` accepting a message to its `delivered`
event, at half the peak rate, through the real `mailhaven serve`.

What is measured: this script starts `mailhaven serve` (API and delivery worker in one
process, as an operator runs it, configured by the environment) with `relayhost` pointed
at a local aiosmtpd sink that accepts everything (its own process). Messages are the
ingest benchmark's: multipart, ~1 KB of text and a 10 KB attachment, one new recipient
each, sent on raw keep-alive connections.

1. Peak: --peak-messages are posted as fast as --clients connections allow; the peak rate
   is messages / (last `delivered` event - first `accepted` event): what the whole path,
   accept to delivered, sustains on this machine in this run.
2. Paced: for --seconds, an open-loop client posts at half that rate (each message at its
   scheduled time, whether or not earlier answers came back). Per message, the latency is
   its `delivered` event's timestamp minus its `accepted` event's (both written by the
   server, read from the events table); the latency from the client's scheduled send time
   to `delivered` (which adds the HTTP request) is printed beside it.

Goals (issue 17): p50 < 100 ms, p99 < 500 ms (issue 5 had p99 < 1 s). The peak resident
memory (VmHWM) of the serve process over the run is printed too. The script checks that
every message has its `accepted` and `delivered` events and that the sink received every
one; it stops by itself (--peak-messages, --seconds, --max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select

from common import (
    DOMAIN,
    Column,
    Figure,
    RawConnection,
    backend_name,
    basic_auth,
    bench_arguments,
    bench_settings,
    free_port,
    mailhaven_serve,
    median,
    memory_kb,
    multipart_send,
    percentile,
    record,
    seed,
    start_sink,
    stop_sink,
    table,
    throwaway_database,
)
from mailhaven.events.models import Event
from mailhaven.services import Services

PATH = f"/v3/{DOMAIN}/messages"
T = TypeVar("T")
P50_GOAL_MS = 100  # issue 17's goals for accept -> delivered at half the peak rate
P99_GOAL_MS = 500
CLOCK_SLACK = 5.0  # seconds: an event is read from this long before its message was sent


@dataclass
class Sent:
    message_id: str
    scheduled: float  # wall clock (time.time) when the client meant to send it
    started: float  # when it actually went out


class Client:
    def __init__(self, port: int, api_key: str, clients: int, deadline: float) -> None:
        self.free: asyncio.Queue[RawConnection] = asyncio.Queue()
        self.connections = [RawConnection(port, basic_auth(api_key)) for _ in range(clients)]
        for conn in self.connections:
            self.free.put_nowait(conn)
        self.deadline = deadline
        self.sequence = itertools.count()

    def prepared(self, count: int) -> list[bytes]:
        conn = self.connections[0]
        return [conn.prepare("POST", PATH, *multipart_send(next(self.sequence)))
                for _ in range(count)]

    async def post(self, request: bytes, scheduled: float) -> Sent:
        conn = await self.free.get()
        try:
            started = time.time()
            status, body = await conn.request(request)
        finally:
            self.free.put_nowait(conn)
        if status != 200:
            raise RuntimeError(f"send refused: {status} {body[:200]!r}")
        return Sent(json.loads(body)["id"].strip("<>"), scheduled, started)

    async def burst(self, count: int) -> list[Sent]:
        """`count` messages, each connection sending its next as soon as it has an answer."""
        requests = self.prepared(count)
        return list(await asyncio.gather(*(self.post(r, time.time()) for r in requests)))

    async def paced(self, rate: float, seconds: float) -> list[Sent]:
        """Open loop: message i is due at start + i / rate, whatever the answers do."""
        count = max(1, int(rate * seconds))
        requests = self.prepared(count)
        loop = asyncio.get_running_loop()
        start_loop, start_wall = loop.time() + 0.05, time.time() + 0.05
        tasks = []
        for i, request in enumerate(requests):
            if time.monotonic() > self.deadline:
                raise TimeoutError("--max-seconds reached")
            await asyncio.sleep(max(0.0, start_loop + i / rate - loop.time()))
            tasks.append(asyncio.create_task(self.post(request, start_wall + i / rate)))
        return list(await asyncio.gather(*tasks))

    async def close(self) -> None:
        for conn in self.connections:
            await conn.close()


def event_times(services: Services, ids: list[str], since: float) -> dict[str, dict[str, float]]:
    """message id -> {event: timestamp} for `accepted` and `delivered` of the messages
    `ids`, sent from `since` (wall clock) on. Read as one range of the (domain, time) index
    from `since`, matched by the Message-ID's blind index in Python: a filter on that
    column alone, which no index leads with, reads the whole table each time, and a soak's
    table grows by ~13,000 events a minute (the reads then load the server they measure)."""
    times: dict[str, dict[str, float]] = {}
    with services.db.sessions() as session:
        first = session.execute(select(Event.account_id, Event.domain_id).limit(1)).first()
        if first is None:
            return times
        account_id, domain_id = first
        by_index = {services.vault.message_index(account_id, m): m for m in ids}
        for index, event, timestamp in session.execute(
                select(Event.message_id_index, Event.event, Event.timestamp).where(
                    Event.domain_id == domain_id, Event.timestamp >= since,
                    Event.event.in_(("accepted", "delivered")))):
            if index in by_index:
                times.setdefault(by_index[index], {})[event] = timestamp
    return times


async def wait_delivered(services: Services, sent: list[Sent],
                         deadline: float) -> dict[str, dict[str, float]]:
    ids = [s.message_id for s in sent]
    since = min((s.started for s in sent), default=0.0) - CLOCK_SLACK
    while True:
        times = await asyncio.to_thread(event_times, services, ids, since)
        if sum("delivered" in t for t in times.values()) == len(ids):
            return times
        if time.monotonic() > deadline:
            raise TimeoutError(f"--max-seconds reached with "
                               f"{sum('delivered' in t for t in times.values())} of "
                               f"{len(ids)} delivered")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Result:
    peak_rate: float
    burst_accept_rate: float
    paced_rate: float
    paced_count: int
    server_ms: list[float]  # accepted event -> delivered event
    client_ms: list[float]  # scheduled send -> delivered event
    max_lag_ms: float  # how late the open-loop client sent, at worst
    hwm_kb: int


async def run(port: int, pid: int, api_key: str, services: Services,
              args: argparse.Namespace) -> Result:
    deadline = time.monotonic() + args.max_seconds
    client = Client(port, api_key, args.clients, deadline)
    try:
        await wait_delivered(services, await client.burst(args.warmup), deadline)
        burst_started = time.time()
        burst = await client.burst(args.peak_messages)
        burst_accept_rate = len(burst) / (time.time() - burst_started)
        times = await wait_delivered(services, burst, deadline)
        first = min(t["accepted"] for t in times.values())
        last = max(t["delivered"] for t in times.values())
        peak = len(burst) / (last - first)
        rate = args.rate or peak / 2
        print(f"  peak: {len(burst)} messages, accept to delivered {peak:.1f}/s "
              f"(API accepted {burst_accept_rate:.1f}/s); pacing at {rate:.1f}/s "
              f"for {args.seconds:.0f} s", flush=True)
        paced = await client.paced(rate, args.seconds)
        times = await wait_delivered(services, paced, deadline)
    finally:
        await client.close()
    server_ms, client_ms = [], []
    for s in paced:
        t = times[s.message_id]
        server_ms.append(1000 * (t["delivered"] - t["accepted"]))
        client_ms.append(1000 * (t["delivered"] - s.scheduled))
    lag = max(s.started - s.scheduled for s in paced)
    return Result(peak, burst_accept_rate, rate, len(paced), server_ms, client_ms,
                  1000 * lag, memory_kb(pid))


def report(result: Result, backend: str) -> None:
    columns = [Column("latency", 26, ""), Column("p50 ms", 8, ".1f"),
               Column("p90 ms", 8, ".1f"), Column("p99 ms", 8, ".1f"),
               Column("max ms", 8, ".1f")]
    rows = [[name, *(percentile(values, q) for q in (50, 90, 99)), max(values)]
            for name, values in (("accepted -> delivered", result.server_ms),
                                 ("client send -> delivered", result.client_ms))]
    p50, p99 = percentile(result.server_ms, 50), percentile(result.server_ms, 99)
    summary = "\n".join([
        f"latency, {backend}: mailhaven serve, peak {result.peak_rate:.1f}/s, paced at "
        f"{result.paced_rate:.1f}/s: {result.paced_count} messages, open loop (sent at most "
        f"{result.max_lag_ms:.0f} ms late)",
        table(columns, rows),
        f"goals: p50 < {P50_GOAL_MS} ms: {'met' if p50 < P50_GOAL_MS else 'not met'} "
        f"({p50:.1f} ms)   p99 < {P99_GOAL_MS} ms: {'met' if p99 < P99_GOAL_MS else 'not met'} "
        f"({p99:.1f} ms)   "
        f"median of all {median(result.server_ms):.1f} ms",
        f"mailhaven serve peak resident memory (VmHWM): {result.hwm_kb / 1024:.0f} MB"])
    print("\n" + summary)
    what = f"accepted -> delivered at half the peak rate ({result.paced_rate:.0f}/s)"
    record("latency", backend, [
        Figure(f"{what}, p50", p50, "ms", goal=f"< {P50_GOAL_MS} ms", met=p50 < P50_GOAL_MS),
        Figure(f"{what}, p99", p99, "ms", goal=f"< {P99_GOAL_MS} ms", met=p99 < P99_GOAL_MS),
    ], summary)


def against_serve(name: str, database_url: str | None,
                  run: Callable[[int, int, str, Services], Awaitable[T]]) -> tuple[T, int]:
    """`mailhaven serve` on a fresh data directory (or a throwaway PostgreSQL database),
    relaying to a sink process, an account seeded; `run(port, serve's pid, API key,
    services)` against it (the services read the events). Its result, and how many
    messages the sink received."""
    sink_port = free_port()
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(database_url) as url:
        data_dir = Path(tmp)
        settings = bench_settings(data_dir, url)
        _, api_key = seed(settings)
        sink = start_sink(sink_port)
        try:
            services = Services.start(settings, migrate=False)
            try:
                with mailhaven_serve(data_dir, url, sink_port) as (proc, port):
                    print(f"{name} on {backend_name(database_url)}: mailhaven serve pid "
                          f"{proc.pid} on 127.0.0.1:{port}, sink pid {sink.pid}", flush=True)
                    result = asyncio.run(run(port, proc.pid, api_key, services))
            finally:
                services.close()
        finally:
            received = stop_sink(sink)
    return result, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peak-messages", type=int, default=1000,
                        help="messages of the burst that measures the peak rate")
    parser.add_argument("--seconds", type=float, default=30,
                        help="how long to send at half the peak rate")
    parser.add_argument("--rate", type=float, default=None,
                        help="pace at this many messages/s instead of half the peak")
    parser.add_argument("--clients", type=int, default=64,
                        help="connections (the burst's concurrency; the paced client's pool)")
    parser.add_argument("--warmup", type=int, default=100)
    bench_arguments(parser, max_seconds=300)
    args = parser.parse_args()
    if min(args.peak_messages, args.clients) < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--peak-messages, --clients and --seconds must be positive")

    backend = backend_name(args.database_url)
    result, received = against_serve(
        "latency", args.database_url,
        lambda port, pid, api_key, services: run(port, pid, api_key, services, args))
    report(result, backend)
    expected = args.warmup + args.peak_messages + result.paced_count
    if received != expected:
        raise SystemExit(f"sent {expected} messages but the sink counted {received}")
    print(f"check: every message has its accepted and delivered events; the sink "
          f"received all {received}")


if __name__ == "__main__":
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
