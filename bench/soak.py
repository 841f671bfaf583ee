"""Soak: `mailhaven serve` at 70% of its peak rate for 30 minutes (issue 17).

What is measured: this script starts the real `mailhaven serve` (API and delivery worker in
one process, configured by the environment) on a throwaway PostgreSQL database (by default
the server of MAILHAVEN_BENCH_PG, else postgresql://postgres@127.0.0.1:5432/postgres;
`--database-url ''` runs it on SQLite), with `relayhost` at the aiosmtpd sink of
`common.py`. The messages are `latency.py`'s: multipart, ~1 KB of text and a 10 KB
attachment, a new recipient each, posted on raw keep-alive connections by `latency.Client`.

1. Peak, sustained: the highest steady rate serve keeps up with, intake and delivery at
   once. First closed on delivery: for --peak-seconds (90) the --clients connections post
   as fast as serve answers, but only while fewer than --backlog (300) accepted messages
   wait for delivery (the `delivered` events counted every 0.2 s); what is delivered per
   second in the last two thirds bounds the search from above. Bursty intake is cheaper
   than steady (larger group commits and claims), so that rate is more than serve keeps up
   with when mail comes steadily. Then --steps (4) open-loop rates of --step-seconds (60)
   each, bisected between 40% and 100% of it: a rate is kept up with when the last third
   of its messages are delivered within 1 s at the median (a queue that grows shows there)
   and none is sent more than 1 s late. The peak is the highest rate kept up with. (
   `latency.py`'s peak is a burst's: intake first, most deliveries after it.)
2. Soak: for --minutes, an open-loop client posts at --fraction (70%) of that peak, each
   message at its scheduled time whatever the answers do (built as it goes: a 30-minute run
   is ~150,000 messages). Every --sample-seconds (10) it reads serve's resident memory
   (VmRSS in /proc/PID/status), its open file descriptors (/proc/PID/fd) and, beside them,
   the resident memory of serve's child processes (its rendering processes); the
   accept -> delivered latency of each message (its `delivered` event's timestamp minus its
   `accepted` event's, both written by the server) is counted in the window it was sent in.
   A table row per minute is printed while it runs (15 s after the minute, once all of that
   minute's messages are delivered): the rate sent, how late the client sent at worst (it
   waits for a free connection when all --clients are busy: a large figure means serve
   answered too slowly for the load to stay open loop), the most RSS and fds sampled, and
   the latency's p50, p99 and maximum. The table is printed again at the end.

Verdicts, over the samples after the warm-up (the first 5 minutes; a third of the run when
that is shorter than 15 minutes):
- RSS flat: the largest sample is within 10% of the smallest, and it is below 300 MB;
- file descriptors flat: the most in the last third of those samples is at most the most in
  the first third + 5 (connections come and go; a leak only grows);
- p99 stable: the accept -> delivered p99 of the messages sent in the last third is at most
  1.5x the p99 of those sent in the first third.
It also checks that the sink received every message sent. The plot of RSS, descriptors and
the p50/p99 of each window over time is written to --plot (docs/soak.png; matplotlib, the
`bench` extra: `make soak` installs it). docs/soak.md says how to run and read it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from common import (
    Column,
    Figure,
    backend_name,
    bench_arguments,
    memory_kb,
    percentile,
    record,
    run_script,
    table,
)
from latency import Client, Sent, against_serve, wait_delivered
from mailhaven.events.models import Event
from mailhaven.services import Services

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("MAILHAVEN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
RSS_GOAL_MB = 300
RSS_FLAT = 0.10  # after warm-up, max / min - 1
FD_SLACK = 5
P99_STABLE = 1.5  # last third's p99 / first third's
GRACE = 15.0  # seconds after a minute before its messages' latencies are read
STEADY_MS = 1000.0  # a steady rate is kept up with while its p50 (and lateness) stay below
LOWEST = 0.4  # of the closed loop's rate: the lower end of the search for the steady one
MB = 1024.0  # kB per MB


@dataclass
class Sample:
    at: float  # seconds since the soak started
    rss_kb: int
    fds: int
    children_kb: int


@dataclass
class Soak:
    started: float  # time.time() of the first scheduled message
    rate: float
    seconds: float
    sent: list[Sent] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)  # message id -> accept->deliver

    def offset(self, s: Sent) -> float:
        return s.scheduled - self.started

    def latencies(self, start: float, end: float) -> list[float]:
        """accept -> delivered of the messages scheduled in [start, end) seconds."""
        return [self.latency_ms[s.message_id] for s in self.sent
                if start <= self.offset(s) < end and s.message_id in self.latency_ms]


# -- /proc ---------------------------------------------------------------------------------
def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children_rss_kb(pid: int) -> int:
    """The resident memory of a process's children (serve's rendering processes)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                total += memory_kb(int(entry), "VmRSS")
        except (OSError, RuntimeError, ValueError):
            continue  # gone meanwhile, or a kernel thread
    return total


def sample(pid: int, at: float) -> Sample:
    return Sample(at, memory_kb(pid, "VmRSS"), open_fds(pid), children_rss_kb(pid))


# -- the run -------------------------------------------------------------------------------
def delivered_count(services: Services, since: float) -> int:
    """`delivered` events from `since` (wall clock) on: a range of the (domain, time) index."""
    with services.db.sessions() as session:
        domain_id = session.scalar(select(Event.domain_id).limit(1))
        return session.scalar(select(func.count()).select_from(Event).where(
            Event.domain_id == domain_id, Event.timestamp >= since,
            Event.event == "delivered")) or 0


@dataclass(frozen=True)
class Step:
    rate: float
    p50_ms: float  # accept -> delivered of the last third of the step's messages
    late_ms: float  # how late the open-loop client sent, at worst

    @property
    def kept_up(self) -> bool:
        return self.p50_ms < STEADY_MS and self.late_ms < STEADY_MS


@dataclass
class Peak:
    closed: float  # delivered/s, closed on delivery, intake running throughout
    intake: float  # accepted/s over the same window
    sent: list[Sent]  # every message of the peak's measures
    steps: list[Step] = field(default_factory=list)
    given: float | None = None  # --peak: measured by an earlier run, not by this one

    @property
    def rate(self) -> float:
        """The highest steady rate kept up with (the search's lower end when none was)."""
        if self.given:
            return self.given
        kept = [s.rate for s in self.steps if s.kept_up]
        return max(kept) if kept else LOWEST * self.closed


async def closed_peak(client: Client, services: Services, args: argparse.Namespace,
                      deadline: float) -> Peak:
    """Post as fast as serve answers while fewer than --backlog messages wait for delivery,
    for --peak-seconds; after an untimed warm-up burst. See the module's docstring."""
    await wait_delivered(services, await client.burst(args.warmup), deadline)
    loop = asyncio.get_running_loop()
    since = time.time()
    delivered = base = await asyncio.to_thread(delivered_count, services, since)
    sent: list[Sent] = []
    posted = 0
    start = loop.time()
    end = start + args.peak_seconds
    window = start + args.peak_seconds / 3
    marks: dict[str, tuple[float, int, int]] = {}  # "from"/"to" -> (time, delivered, sent)
    room = asyncio.Event()

    async def counter() -> None:
        nonlocal delivered
        while loop.time() < end:
            delivered = await asyncio.to_thread(delivered_count, services, since)
            now = loop.time()
            if now >= window and "from" not in marks:
                marks["from"] = (now, delivered, len(sent))
            if posted - (delivered - base) < args.backlog:
                room.set()
            await asyncio.sleep(0.2)
        marks["to"] = (loop.time(), delivered, len(sent))
        room.set()

    async def poster() -> None:
        nonlocal posted
        while loop.time() < end:
            if posted - (delivered - base) >= args.backlog:
                room.clear()
                await room.wait()
                continue
            posted += 1
            sent.append(await client.post(client.prepared(1)[0], time.time()))
            if time.monotonic() > deadline:
                raise TimeoutError("--max-seconds reached")

    await asyncio.gather(counter(), *(poster() for _ in range(args.clients)))
    await wait_delivered(services, sent, deadline)  # the soak starts from an empty queue
    (t0, d0, s0), (t1, d1, s1) = marks["from"], marks["to"]
    return Peak((d1 - d0) / (t1 - t0), (s1 - s0) / (t1 - t0), sent)


async def steady_step(client: Client, services: Services, rate: float, seconds: float,
                      deadline: float) -> tuple[Step, list[Sent]]:
    """Open loop at `rate` for `seconds`; kept up with if the last third's messages were
    delivered within STEADY_MS (a queue that grows shows there) and none was sent late."""
    sent = await client.paced(rate, seconds)
    times = await wait_delivered(services, sent, deadline)  # the next starts from empty
    last = sent[len(sent) * 2 // 3:]
    p50 = percentile([1000 * (times[s.message_id]["delivered"] - times[s.message_id]["accepted"])
                      for s in last], 50)
    late = 1000 * max(s.started - s.scheduled for s in sent)
    return Step(rate, p50, late), sent


async def sustained_peak(client: Client, services: Services, args: argparse.Namespace,
                         deadline: float) -> Peak:
    """The closed loop's rate, then the highest steady rate kept up with, bisected between
    LOWEST and all of it in --steps steps of --step-seconds. See the module's docstring."""
    peak = await closed_peak(client, services, args, deadline)
    print(f"  closed on delivery: {peak.closed:.1f} delivered/s ({peak.intake:.1f} accepted/s) "
          f"in {args.peak_seconds:g} s; now steady rates, {args.step_seconds:g} s each:",
          flush=True)
    low, high = LOWEST * peak.closed, peak.closed
    for _ in range(args.steps):
        rate = (low + high) / 2
        step, sent = await steady_step(client, services, rate, args.step_seconds, deadline)
        peak.steps.append(step)
        peak.sent += sent
        print(f"    {rate:6.1f}/s: last third's p50 {step.p50_ms:7.1f} ms, sent at most "
              f"{step.late_ms:5.0f} ms late: {'kept up' if step.kept_up else 'fell behind'}",
              flush=True)
        low, high = (rate, high) if step.kept_up else (low, rate)
    return peak


MINUTE_COLUMNS = [Column("minute", 6, "d"), Column("sent/s", 7, ".1f"), Column("late ms", 7, ".0f"),
                  Column("RSS MB", 7, ".1f"), Column("children MB", 11, ".1f"),
                  Column("fds", 5, "d"), Column("p50 ms", 7, ".1f"),
                  Column("p99 ms", 7, ".1f"), Column("max ms", 7, ".1f")]


def minute_row(soak: Soak, minute: int) -> list[object]:
    start, end = 60.0 * minute, min(60.0 * (minute + 1), soak.seconds)
    values = soak.latencies(start, end)
    samples = [s for s in soak.samples if start < s.at <= end + 1e-6] or soak.samples[-1:]
    sent = [s for s in soak.sent if start <= soak.offset(s) < end]
    late_ms = 1000 * max((s.started - s.scheduled for s in sent), default=0.0)
    return [minute + 1, len(sent) / max(end - start, 1e-9), late_ms,
            max(s.rss_kb for s in samples) / MB, max(s.children_kb for s in samples) / MB,
            max(s.fds for s in samples), percentile(values, 50), percentile(values, 99),
            max(values, default=float("nan"))]


async def read_latencies(soak: Soak, services: Services, start: float, end: float,
                         deadline: float) -> None:
    """Wait until every message scheduled in [start, end) is delivered; keep its latency."""
    batch = [s for s in soak.sent if start <= soak.offset(s) < end]
    if not batch:
        return
    times = await wait_delivered(services, batch, deadline)
    for s in batch:
        t = times[s.message_id]
        soak.latency_ms[s.message_id] = 1000 * (t["delivered"] - t["accepted"])


async def run_soak(client: Client, services: Services, pid: int, rate: float,
                   args: argparse.Namespace, deadline: float) -> Soak:
    loop = asyncio.get_running_loop()
    seconds = 60.0 * args.minutes
    start_loop = loop.time() + 0.05
    soak = Soak(started=time.time() + 0.05, rate=rate, seconds=seconds)
    pending: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def post(request: bytes, scheduled: float) -> None:
        soak.sent.append(await client.post(request, scheduled))

    def settled(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            failures.append(error)

    async def sender() -> None:
        i = 0
        while (due := i / rate) < seconds:
            if failures:
                raise failures[0]
            if time.monotonic() > deadline:
                raise TimeoutError("--max-seconds reached")
            await asyncio.sleep(max(0.0, start_loop + due - loop.time()))
            task = asyncio.create_task(post(client.prepared(1)[0], soak.started + due))
            pending.add(task)
            task.add_done_callback(settled)
            i += 1
        while pending:
            await asyncio.wait(set(pending))
        if failures:
            raise failures[0]

    async def sampler() -> None:
        n = 1
        while (at := n * args.sample_seconds) <= seconds + 1e-6:
            await asyncio.sleep(max(0.0, start_loop + at - loop.time()))
            soak.samples.append(await asyncio.to_thread(sample, pid, at))
            n += 1

    async def reporter() -> None:
        print(table(MINUTE_COLUMNS, []), flush=True)
        minutes = int(-(-seconds // 60))
        for minute in range(minutes):
            end = min(60.0 * (minute + 1), seconds)
            await asyncio.sleep(max(0.0, start_loop + end + GRACE - loop.time()))
            if minute == minutes - 1:  # the last: every answer is in once the sender is done
                await sending
            await read_latencies(soak, services, 60.0 * minute, end, deadline)
            line = table(MINUTE_COLUMNS, [minute_row(soak, minute)]).splitlines()[-1]
            print(line, flush=True)

    sending = asyncio.create_task(sender())
    await asyncio.gather(sending, sampler(), reporter())
    # answers that came after their minute was read (a slow spell): their latencies too
    late = [s for s in soak.sent if s.message_id not in soak.latency_ms]
    if late:
        times = await wait_delivered(services, late, deadline)
        for s in late:
            t = times[s.message_id]
            soak.latency_ms[s.message_id] = 1000 * (t["delivered"] - t["accepted"])
    return soak


# -- verdicts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdicts:
    warmup: float  # seconds
    rss_min_mb: float
    rss_max_mb: float
    fds_first: int
    fds_last: int
    p99_first: float
    p99_last: float

    @property
    def rss_spread(self) -> float:
        return self.rss_max_mb / self.rss_min_mb - 1

    @property
    def rss_flat(self) -> bool:
        return self.rss_spread <= RSS_FLAT and self.rss_max_mb < RSS_GOAL_MB

    @property
    def fds_flat(self) -> bool:
        return self.fds_last <= self.fds_first + FD_SLACK

    @property
    def p99_ratio(self) -> float:
        return self.p99_last / self.p99_first

    @property
    def p99_stable(self) -> bool:
        return self.p99_ratio <= P99_STABLE


def warmup_seconds(seconds: float) -> float:
    return 300.0 if seconds >= 900 else seconds / 3


def verdicts(soak: Soak) -> Verdicts:
    warmup = warmup_seconds(soak.seconds)
    after = [s for s in soak.samples if s.at > warmup] or soak.samples[-1:]
    third = max(1, len(after) // 3)
    span = (soak.seconds - warmup) / 3
    return Verdicts(
        warmup=warmup,
        rss_min_mb=min(s.rss_kb for s in after) / MB,
        rss_max_mb=max(s.rss_kb for s in after) / MB,
        fds_first=max(s.fds for s in after[:third]),
        fds_last=max(s.fds for s in after[-third:]),
        p99_first=percentile(soak.latencies(warmup, warmup + span), 99),
        p99_last=percentile(soak.latencies(soak.seconds - span, soak.seconds), 99))


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def windows(soak: Soak, width: float) -> list[tuple[float, float, float]]:
    """(end of window in minutes, p50, p99) of the messages sent in each window."""
    buckets: dict[int, list[float]] = {}
    for s in soak.sent:
        if s.message_id in soak.latency_ms:
            buckets.setdefault(int(soak.offset(s) // width), []).append(
                soak.latency_ms[s.message_id])
    count = int(soak.seconds // width)
    return [((n + 1) * width / 60, percentile(buckets.get(n, []), 50),
             percentile(buckets.get(n, []), 99)) for n in range(count)]


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def plot(soak: Soak, v: Verdicts, peak: float, backend: str, path: Path,
         sample_seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.at / 60 for s in soak.samples]
    fig, (memory, fds, latency) = plt.subplots(
        3, 1, sharex=True, figsize=(9, 8), gridspec_kw={"height_ratios": [3, 1.4, 3]})
    memory.plot(minutes, [s.rss_kb / MB for s in soak.samples], label="serve RSS (MB)")
    memory.plot(minutes, [s.children_kb / MB for s in soak.samples], linestyle=":",
                label="its child processes (rendering), RSS (MB)")
    memory.axhline(RSS_GOAL_MB, color="red", linewidth=0.8, label=f"{RSS_GOAL_MB} MB")
    memory.set_ylabel("resident MB")
    memory.set_ylim(bottom=0)
    memory.legend(loc="lower right", fontsize=8)
    fds.plot(minutes, [s.fds for s in soak.samples], color="grey")
    fds.set_ylabel("serve open fds")
    fds.set_ylim(bottom=0, top=1.3 * max((s.fds for s in soak.samples), default=1))
    series = windows(soak, sample_seconds)
    latency.plot([w[0] for w in series], [w[2] for w in series], label="p99")
    latency.plot([w[0] for w in series], [w[1] for w in series], label="p50")
    latency.set_ylabel(f"accept -> delivered, ms (per {sample_seconds:g} s window)")
    latency.set_xlabel("minutes since the soak started")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper right", fontsize=8)
    for axis in (memory, fds, latency):
        axis.axvspan(0, v.warmup / 60, color="grey", alpha=0.12)
        axis.grid(alpha=0.3)
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    fig.suptitle(f"mailhaven serve, {backend}: {soak.seconds / 60:g} min at {soak.rate:.0f}/s "
                 f"({soak.rate / peak:.0%} of the sustained peak {peak:.0f}/s); {day}, {commit()}\n"
                 f"shaded: warm-up. RSS flat: {met(v.rss_flat)}, fds flat: "
                 f"{met(v.fds_flat)}, p99 stable: {met(v.p99_stable)}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(soak: Soak, v: Verdicts, sustained: Peak, backend: str, table_text: str,
           sample_seconds: float) -> str:
    peak = sustained.rate
    steps = ", ".join(f"{s.rate:.1f}/s {'kept up' if s.kept_up else 'fell behind'} "
                      f"(p50 {s.p50_ms:.0f} ms)" for s in sustained.steps)
    peak_line = (f"peak: closed on delivery {sustained.closed:.1f}/s; steady: {steps or 'none'}"
                 f" -> sustained peak {peak:.1f}/s") if not sustained.given else (
        f"peak: {peak:.1f}/s, given (--peak: measured by an earlier run)")
    every = list(soak.latency_ms.values())
    lag_ms = 1000 * max((s.started - s.scheduled for s in soak.sent), default=0.0)
    summary = "\n".join([
        f"soak, {backend}: mailhaven serve, {soak.seconds / 60:g} min at {soak.rate:.1f}/s "
        f"({soak.rate / peak:.0%} of the sustained peak {peak:.1f}/s): {len(soak.sent)} "
        f"messages, open loop (sent at most {lag_ms:.0f} ms late); serve sampled every "
        f"{sample_seconds:g} s",
        table_text,
        peak_line,
        f"warm-up: the first {v.warmup / 60:.1f} min; after it:",
        f"  serve RSS {v.rss_min_mb:.1f}-{v.rss_max_mb:.1f} MB, spread {v.rss_spread:.1%} "
        f"(flat: <= {RSS_FLAT:.0%} and < {RSS_GOAL_MB} MB): {met(v.rss_flat)}",
        f"  open fds, most in the first third {v.fds_first}, in the last third {v.fds_last} "
        f"(flat: last <= first + {FD_SLACK}): {met(v.fds_flat)}",
        f"  accept -> delivered p99, first third {v.p99_first:.1f} ms, last third "
        f"{v.p99_last:.1f} ms, ratio {v.p99_ratio:.2f} (stable: <= {P99_STABLE}x): "
        f"{met(v.p99_stable)}",
        f"  over the whole soak: p50 {percentile(every, 50):.1f} ms, p99 "
        f"{percentile(every, 99):.1f} ms, max {max(every, default=float('nan')):.1f} ms"])
    return summary


def figures(soak: Soak, v: Verdicts, peak: float) -> list[Figure]:
    what = f"{soak.seconds / 60:g} min at {soak.rate / peak:.0%} of the peak ({soak.rate:.0f}/s)"
    return [
        Figure(f"serve RSS after warm-up, most, {what}", v.rss_max_mb, "MB",
               goal=f"< {RSS_GOAL_MB} MB", met=v.rss_max_mb < RSS_GOAL_MB),
        Figure(f"serve RSS after warm-up, most over least, {what}", v.rss_max_mb, "MB",
               "least after warm-up, MB", v.rss_min_mb, v.rss_max_mb / v.rss_min_mb,
               goal=f"<= {1 + RSS_FLAT:g}x", met=v.rss_spread <= RSS_FLAT),
        Figure(f"serve open fds, most in the last third after warm-up, {what}", v.fds_last,
               "fds", "most in the first third", v.fds_first,
               v.fds_last / v.fds_first if v.fds_first else None,
               goal=f"<= first + {FD_SLACK}", met=v.fds_flat),
        Figure(f"accept -> delivered p99, last third after warm-up, {what}", v.p99_last,
               "ms", "the first third's p99, ms", v.p99_first, v.p99_ratio,
               goal=f"<= {P99_STABLE:g}x", met=v.p99_stable),
    ]


async def run(port: int, pid: int, api_key: str, services: Services,
              args: argparse.Namespace) -> tuple[Peak, Soak]:
    deadline = time.monotonic() + args.max_seconds
    client = Client(port, api_key, args.clients, deadline)
    try:
        if args.peak:
            await wait_delivered(services, await client.burst(args.warmup), deadline)
            peak = Peak(0.0, 0.0, [], given=args.peak)
        else:
            peak = await sustained_peak(client, services, args, deadline)
        rate = args.rate or args.fraction * peak.rate
        print(f"  peak, sustained: {peak.rate:.1f}/s (the highest steady rate kept up with); "
              f"soaking at {rate:.1f}/s for {args.minutes:g} min (serve pid {pid})", flush=True)
        soak = await run_soak(client, services, pid, rate, args, deadline)
    finally:
        await client.close()
    return peak, soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="how long to soak")
    parser.add_argument("--fraction", type=float, default=0.7,
                        help="of the peak rate to soak at")
    parser.add_argument("--rate", type=float, default=None,
                        help="soak at this many messages/s instead of a fraction of the peak")
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--peak-seconds", type=float, default=90,
                        help="how long the sustained peak is measured")
    parser.add_argument("--backlog", type=int, default=300,
                        help="most messages waiting for delivery in the closed loop")
    parser.add_argument("--steps", type=int, default=4,
                        help="steady rates tried in the search for the sustained peak")
    parser.add_argument("--step-seconds", type=float, default=60,
                        help="how long each steady rate is tried")
    parser.add_argument("--peak", type=float, default=None,
                        help="the sustained peak, as an earlier run on this machine measured "
                             "it: not measured again")
    parser.add_argument("--clients", type=int, default=64,
                        help="connections (the peak's posters; the soak client's pool)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="messages of an untimed burst before the peak's")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "soak.png",
                        help="where to write the plot (PNG)")
    bench_arguments(parser, max_seconds=0)
    parser.set_defaults(database_url=POSTGRES)
    args = parser.parse_args()
    if min(args.minutes, args.fraction, args.sample_seconds, args.peak_seconds,
           args.step_seconds) <= 0 or min(args.backlog, args.clients) < 1 or min(
            args.warmup, args.steps) < 0:
        parser.error("--minutes, --fraction, --sample-seconds, --peak-seconds, "
                     "--step-seconds, --backlog and --clients must be positive")
    if not args.max_seconds:  # the peak's measures, the soak, then 10 minutes to spare
        args.max_seconds = (args.peak_seconds + args.steps * (args.step_seconds + 60)
                            + 60 * args.minutes + 600)
    try:
        import matplotlib  # noqa: F401  (before the run, not after 30 minutes)
    except ImportError:
        raise SystemExit("matplotlib is missing: `make soak` installs it (the `bench` extra: "
                         ".venv/bin/pip install -e '.[bench]')") from None

    backend = backend_name(args.database_url)
    (sustained, soak), received = against_serve(
        "soak", args.database_url,
        lambda port, pid, api_key, services: run(port, pid, api_key, services, args))
    v, peak = verdicts(soak), sustained.rate
    rows = [minute_row(soak, m) for m in range(int(-(-soak.seconds // 60)))]
    summary = report(soak, v, sustained, backend, table(MINUTE_COLUMNS, rows),
                     args.sample_seconds)
    print("\n" + summary)
    plot(soak, v, peak, backend, args.plot, args.sample_seconds)
    print(f"plot: {args.plot}")
    record("soak", backend, figures(soak, v, peak), summary)
    expected = args.warmup + len(sustained.sent) + len(soak.sent)
    if received != expected:
        raise SystemExit(f"sent {expected} messages but the sink counted {received}")
    print(f"check: every message has its accepted and delivered events; the sink received "
          f"all {received}")


if __name__ == "__main__":
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    run_script(main)
