"""Delivery benchmark: messages per second from the queue to an SMTP server.

What is measured: N messages (one recipient each, ~1 KB of text, two tags, two variables)
are accepted in-process through `mailhaven.sending.service.accept` and
`mailhaven.sending.request.build_request` (in transactions of 100, untimed for the delivery
figure; their rate is printed as "enqueue"), then `mailhaven.delivery.worker.DeliveryWorker`
drains them with `relayhost` pointed at a local aiosmtpd sink that accepts everything. The
time is from the first claim to the last settled attempt: claim (lease, decrypt), render
MIME, DKIM-sign (dkimpy, the domain's 2048-bit key), SMTP over reused connections, settle
(update the row, seal and store the `delivered` event). The worker logs one JSON line per
attempt, as `mailhaven worker` does.

The references, in the same run, to the same sink: the same N messages, pre-rendered by
`mailhaven.sending.content.render` (untimed), sent by plain aiosmtplib with the same number
of tasks (--concurrency) sharing the same number of reused connections as the worker's
transport (`CONNECTIONS_PER_HOST`), with MAIL/RCPT/DATA as the transport issues them:
  ref+dkim  each message DKIM-signed with dkimpy in the loop (same key, same headers,
            relaxed/relaxed, in a thread like the worker) - the primary reference;
  ref       the same without signing: the SMTP path alone.
No database and no events in the references. The sink runs in its own process; its CPU
use is printed so that a sink-bound reference shows.

Rounds alternate the order of the phases; the summary gives medians over rounds. Everything
stays on 127.0.0.1 and each run stops by itself (--messages, --rounds, --max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import dkim
from sqlalchemy import func, select

from common import (
    DOMAIN,
    HOSTNAME,
    Column,
    backend_name,
    bench_settings,
    free_port,
    median,
    process_cpu_seconds,
    seed,
    send_fields,
    start_sink,
    stop_sink,
    table,
    throwaway_database,
)
from mailhaven.delivery.models import DELIVERED, QUEUED, Delivery
from mailhaven.delivery.signing import SIGNED_HEADERS
from mailhaven.delivery.transport import CONNECTIONS_PER_HOST
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.domains import keys
from mailhaven.domains.service import owned_domain
from mailhaven.sending import content
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept, new_message_id
from mailhaven.services import Services

ENQUEUE_BATCH = 100
PHASES = ("worker", "ref+dkim", "ref")


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    seconds: float
    own_cpu: float  # CPU of this process (worker or reference sender) during the phase
    sink_cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    data: bytes


class Bench:
    def __init__(self, services: Services, account_id: str, sink_pid: int,
                 args: argparse.Namespace, deadline: float) -> None:
        self.services = services
        self.account_id = account_id
        self.sink_pid = sink_pid
        self.concurrency: int = args.concurrency
        self.deadline = deadline
        self.sequence = itertools.count()
        self.delivered = 0  # by the worker, over the whole run
        with services.db.sessions() as session:
            key = keys.primary(owned_domain(session, account_id, DOMAIN))
            self.selector = key.selector.encode()
            self.private_pem = keys.private_key(services.vault, key)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("--max-seconds reached")
        return left

    # -- preparing a round's messages ---------------------------------------------------
    def enqueue(self, numbers: list[int]) -> float:
        """Accept one message per number through the service; returns the seconds taken."""
        services = self.services
        started = time.perf_counter()
        for start in range(0, len(numbers), ENQUEUE_BATCH):
            with services.db.transaction() as session:
                domain = owned_domain(session, self.account_id, DOMAIN)
                for i in numbers[start:start + ENQUEUE_BATCH]:
                    accept(session, services.vault, domain, build_request(send_fields(i), []),
                           services.clock)
        return time.perf_counter() - started

    @staticmethod
    def rendered(numbers: list[int]) -> list[Outgoing]:
        """The same messages as the worker sends, rendered the same way (untimed)."""
        out = []
        now = time.time()
        for i in numbers:
            request = build_request(send_fields(i), [])
            doc = content.load(content.dump(request, message_id=new_message_id(DOMAIN, now),
                                            created_at=now))
            recipient = request.to[0]
            out.append(Outgoing(f"bounce+{i}-000000000000@{DOMAIN}", recipient.email,
                                content.render(doc, recipient.formatted(), None)))
        return out

    # -- the phases -----------------------------------------------------------------------
    async def timed(self, name: str, count: int, body: Callable[[], Awaitable[object]]) -> Phase:
        cpu0, own0 = process_cpu_seconds(self.sink_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.wait_for(body(), self.remaining())
        seconds = time.perf_counter() - started
        cpu1, own1 = process_cpu_seconds(self.sink_pid), time.process_time()
        return Phase(name, count, seconds, own1 - own0, cpu1 - cpu0)

    async def worker_phase(self, count: int) -> Phase:
        worker = DeliveryWorker(self.services, concurrency=self.concurrency)
        try:
            phase = await self.timed("worker", count, worker.drain)
        finally:
            await worker.close()
        self.delivered += count
        self.check_queue()
        return phase

    def check_queue(self) -> None:
        with self.services.db.sessions() as session:
            counts = dict(session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        if counts.get(DELIVERED, 0) != self.delivered or counts.get(QUEUED, 0):
            raise RuntimeError(f"expected {self.delivered} delivered, none queued: {counts}")

    def sign(self, data: bytes, headers: list[bytes]) -> bytes:
        signature = dkim.sign(data, self.selector, DOMAIN.encode(), self.private_pem,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=headers)
        return signature + data

    async def reference_phase(self, name: str, messages: list[Outgoing], sign: bool) -> Phase:
        present = {line.split(b":", 1)[0].strip().lower()
                   for line in messages[0].data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                   if b":" in line}
        headers = [h for h in SIGNED_HEADERS if h in present]
        idle: list[aiosmtplib.SMTP] = []
        opened: list[aiosmtplib.SMTP] = []
        slots = asyncio.Semaphore(CONNECTIONS_PER_HOST)
        port = self.services.settings.relayhost[1]  # type: ignore[index]
        todo = iter(messages)

        async def task() -> None:
            for message in todo:
                data = (await asyncio.to_thread(self.sign, message.data, headers)
                        if sign else message.data)
                async with slots:
                    if idle:
                        client = idle.pop()
                    else:
                        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port,
                                                 local_hostname=HOSTNAME, start_tls=False,
                                                 timeout=60)
                        opened.append(client)
                        await client.connect()
                        await client.ehlo()
                    await client.mail(message.sender)
                    await client.rcpt(message.recipient)
                    response = await client.data(data)
                    if response.code != 250:
                        raise RuntimeError(f"sink refused: {response}")
                    idle.append(client)

        async def run() -> None:
            await asyncio.gather(*(task() for _ in range(self.concurrency)))

        try:
            return await self.timed(name, len(messages), run)
        finally:
            for client in opened:
                try:
                    await client.quit(timeout=5)
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    async def round(self, count: int, order: tuple[str, ...]) -> tuple[dict[str, Phase], float]:
        numbers = [next(self.sequence) for _ in range(count)]
        enqueue_seconds = await asyncio.to_thread(self.enqueue, numbers)
        outgoing = self.rendered(numbers)
        phases = {}
        for name in order:
            if name == "worker":
                phases[name] = await self.worker_phase(count)
            else:
                phases[name] = await self.reference_phase(name, outgoing, name == "ref+dkim")
        return phases, count / enqueue_seconds


async def run(services: Services, account_id: str, sink_pid: int,
              args: argparse.Namespace) -> tuple[list[dict[str, Phase]], list[float], int]:
    bench = Bench(services, account_id, sink_pid, args, time.monotonic() + args.max_seconds)
    if args.warmup:
        await bench.round(args.warmup, PHASES)
    rounds, enqueue_rates = [], []
    for number in range(args.rounds):
        order = PHASES if number % 2 == 0 else tuple(reversed(PHASES))
        phases, enqueue_rate = await bench.round(args.messages, order)
        rounds.append(phases)
        enqueue_rates.append(enqueue_rate)
        w, d, r = (phases[p] for p in PHASES)
        print(f"  round {number + 1}: worker {w.rate:7.1f}/s   ref+dkim {d.rate:7.1f}/s   "
              f"ref {r.rate:7.1f}/s   worker/ref+dkim {w.rate / d.rate:.3f}   "
              f"(enqueue {enqueue_rate:.1f}/s)", flush=True)
    return rounds, enqueue_rates, (args.warmup + args.messages * args.rounds) * len(PHASES)


def report(rounds: list[dict[str, Phase]], enqueue_rates: list[float],
           args: argparse.Namespace, backend: str) -> None:
    columns = [Column("phase", 9, ""), Column("msgs/s", 8, ".1f"),
               Column("CPU ms/msg", 10, ".2f"), Column("CPU %", 6, ".0f"),
               Column("sink CPU %", 10, ".0f")]
    rows = []
    for name in PHASES:
        phases = [r[name] for r in rounds]
        rows.append([name, median([p.rate for p in phases]),
                     median([1000 * p.own_cpu / p.messages for p in phases]),
                     median([100 * p.own_cpu / p.seconds for p in phases]),
                     median([100 * p.sink_cpu / p.seconds for p in phases])])
    to_dkim = median([r["worker"].rate / r["ref+dkim"].rate for r in rounds])
    to_smtp = median([r["worker"].rate / r["ref"].rate for r in rounds])
    print()
    print(f"delivery, {backend}: {args.messages} messages per round, concurrency "
          f"{args.concurrency} ({CONNECTIONS_PER_HOST} connections), median of {len(rounds)} "
          f"rounds")
    print(table(columns, rows))
    print(f"worker/ref+dkim ratio: {to_dkim:.3f}   worker/ref ratio: {to_smtp:.3f}   "
          f"enqueue (accept, in-process): {median(enqueue_rates):.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="worker attempts in flight (default: Settings.worker_concurrency)")
    parser.add_argument("--warmup", type=int, default=50,
                        help="an untimed round of this many messages first (0: none)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432/"
                             "postgres; a throwaway database is created on it and dropped")
    parser.add_argument("--max-seconds", type=float, default=900,
                        help="give up (non-zero exit) if the run has not finished by then")
    args = parser.parse_args()
    if min(args.messages, args.rounds) < 1 or args.warmup < 0:
        parser.error("--messages and --rounds must be positive")

    backend = backend_name(args.database_url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(args.database_url) as database_url:
        data_dir = Path(tmp)
        # The worker logs one JSON line per attempt, as `mailhaven worker` does; to a file.
        logging.basicConfig(level=logging.INFO, format="%(message)s",
                            filename=data_dir / "worker.log")
        settings = bench_settings(data_dir, database_url, relayhost=("127.0.0.1", port))
        args.concurrency = args.concurrency or settings.worker_concurrency
        account_id, _ = seed(settings)
        sink = start_sink(port)
        received = -1
        try:
            services = Services.start(settings, migrate=False)
            try:
                print(f"delivery on {backend}: sink pid {sink.pid} on 127.0.0.1:{port}",
                      flush=True)
                rounds, enqueue_rates, sent = asyncio.run(
                    run(services, account_id, sink.pid, args))
            finally:
                services.close()
        finally:
            received = stop_sink(sink)
            logging.shutdown()
        report(rounds, enqueue_rates, args, backend)
        if received != sent:
            raise SystemExit(f"sent {sent} messages but the sink counted {received}")
        print(f"check: the sink accepted all {received} messages; the queue is empty")


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
