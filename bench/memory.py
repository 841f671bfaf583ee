"""Peak memory of `mailhaven serve` while it delivers a large queue.

What is measured: --messages messages (default 10,000, the delivery figure's size in issue 5)
to --domains recipient domains (default 100), each the ingest benchmark's message (~1 KB of
text, a 10 KB attachment, two tags, two variables), are queued beforehand through
`mailhaven.sending.service.accept` (in transactions of 100; untimed). Then this script
starts the real `mailhaven serve` (API and delivery worker in one process, configured by the
environment: a temporary data directory, the database, `relayhost` at a local aiosmtpd sink
in its own process) and waits until every copy is delivered, reading the serve process's
resident memory from /proc every --sample seconds. Reported: VmHWM (the kernel's peak
resident set) at the end, the largest VmRSS sampled, RSS at start, and the delivery rate.

Goal (issue 5): VmHWM < 300 MB. The script checks that every copy is delivered and the sink
received every message; it stops by itself (--messages, --max-seconds).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from common import (
    DOMAIN,
    Figure,
    attachment,
    backend_name,
    bench_settings,
    free_port,
    mailhaven_serve,
    memory_kb,
    record,
    seed,
    send_fields,
    start_sink,
    stop_sink,
    throwaway_database,
)
from mailhaven.delivery.models import DELIVERED, Delivery
from mailhaven.domains.service import owned_domain
from mailhaven.sending.request import Attachment, build_request
from mailhaven.sending.service import accept
from mailhaven.services import Services

BATCH = 100
GOAL_MB = 300


def fields(i: int, domains: int) -> list[tuple[str, str]]:
    """The benchmarks' message, to a recipient in one of `domains` domains."""
    return [(k, f"Customer {i} <customer{i}@rcpt{i % domains}.example>" if k == "to" else v)
            for k, v in send_fields(i)]


def enqueue(services: Services, account_id: str, count: int, domains: int) -> float:
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        with services.db.transaction() as session:
            domain = owned_domain(session, account_id, DOMAIN)
            for i in range(start, min(start + BATCH, count)):
                files = [("attachment", Attachment(f"invoice-{i}.pdf", "application/pdf",
                                                   attachment(i)))]
                accept(session, services.vault, domain,
                       build_request(fields(i, domains), files), services.clock)
    return count / (time.perf_counter() - started)


def delivered(services: Services) -> int:
    with services.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.status == DELIVERED)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=100, help="recipient domains")
    parser.add_argument("--sample", type=float, default=0.25,
                        help="seconds between reads of the serve process's memory")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432/"
                             "postgres; a throwaway database is created on it and dropped")
    parser.add_argument("--max-seconds", type=float, default=400,
                        help="give up (non-zero exit) if delivery has not finished by then")
    args = parser.parse_args()
    if min(args.messages, args.domains) < 1 or args.sample <= 0:
        parser.error("--messages, --domains and --sample must be positive")

    backend = backend_name(args.database_url)
    sink_port = free_port()
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(args.database_url) as database_url:
        data_dir = Path(tmp)
        settings = bench_settings(data_dir, database_url)
        account_id, _ = seed(settings)
        services = Services.start(settings, migrate=False)
        try:
            rate = enqueue(services, account_id, args.messages, args.domains)
            print(f"memory on {backend}: queued {args.messages} messages to {args.domains} "
                  f"domains ({rate:.0f}/s in-process)", flush=True)
            sink = start_sink(sink_port)
            try:
                with mailhaven_serve(data_dir, database_url, sink_port) as (proc, _):
                    started = time.perf_counter()
                    deadline = time.monotonic() + args.max_seconds
                    first_rss = memory_kb(proc.pid, "VmRSS")
                    top_rss, done = first_rss, 0
                    while done < args.messages:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"stopped: --max-seconds reached with {done} of "
                                             f"{args.messages} delivered")
                        time.sleep(args.sample)
                        top_rss = max(top_rss, memory_kb(proc.pid, "VmRSS"))
                        done = delivered(services)
                    seconds = time.perf_counter() - started
                    hwm = memory_kb(proc.pid, "VmHWM")
                    print(f"  serve pid {proc.pid}: delivered {done} in {seconds:.1f} s "
                          f"({done / seconds:.1f}/s)", flush=True)
            finally:
                received = stop_sink(sink)
        finally:
            services.close()
    mb = hwm / 1024
    summary = "\n".join([
        f"memory, {backend}: mailhaven serve delivering {args.messages} messages to "
        f"{args.domains} domains",
        f"  VmHWM {mb:.0f} MB   largest VmRSS sampled {top_rss / 1024:.0f} MB   "
        f"VmRSS at start {first_rss / 1024:.0f} MB",
        f"goal: peak < {GOAL_MB} MB: {'met' if mb < GOAL_MB else 'not met'} "
        f"({mb / GOAL_MB:.2f} of the limit)"])
    print("\n" + summary)
    record("memory", backend, [Figure(
        f"peak memory (VmHWM) of mailhaven serve delivering {args.messages} messages", mb,
        "MB", goal=f"< {GOAL_MB} MB", met=mb < GOAL_MB)], summary)
    if received != args.messages:
        raise SystemExit(f"queued {args.messages} messages but the sink counted {received}")
    print(f"check: every copy delivered; the sink received all {received}")


if __name__ == "__main__":
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    main()
