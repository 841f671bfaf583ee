"""Delivery against Postfix + OpenDKIM: a drain to one SMTP sink, and end to end.

The same N messages (one recipient each, user{i}@d{i % 100}.example, ~1 KB of text, two
tags, two variables) go to one sink on 127.0.0.1, Postfix's `smtp-sink` (C, one process,
counting with -c; its CPU is printed to show it is not the bottleneck), by:

  mailhaven-W     W Mailhaven processes (W = 1, 2: this machine has 2 cores, and Postfix
                  runs several processes too): the real `mailhaven serve` (API, delivery
                  worker, webhook sender... in one process, as an operator runs it) and
                  W - 1 `mailhaven worker` processes beside it, with MAILHAVEN_RELAYHOST =
                  the sink. The messages are accepted first, in this process, through
                  `mailhaven.sending.service.accept_all`, 100 per transaction (untimed;
                  its rate is printed as "enqueue"); the time runs from the first
                  process's start of work (its worker's "started" log line, just before
                  its first claim) to the sink's N-th message. DKIM-signed with the
                  domain's 2048-bit key, as in production. The peak resident memory
                  (VmHWM) of `mailhaven serve` over the run is read from /proc at its end:
                  issue 5's memory figure (goal < 300 MB);
  mailhaven-W-nodkim  the same with `o:dkim=no` (unsigned; Postfix still signs);
  mailhaven-http  end to end (issue 17): `serve` and one `worker` running, the messages
                  posted to POST /v3/{domain}/messages by 10 concurrent httpx clients of
                  this process (keep-alive); timed from the first byte of the first
                  request to the sink's N-th message (each answered 200 after commit);
  mailhaven-smtp  the same through `serve`'s SMTP submission port: 10 aiosmtplib clients,
                  each STARTTLS (the self-signed certificate) and AUTH with an SMTP
                  credential of the domain, logged in before the clock starts (a mailer
                  keeps its connection); the messages Postfix gets, as MIME;
  postfix         "Postfix + OpenDKIM end to end": Postfix 3.x from Debian's packages, a
                  private instance (bench/mta.py) with `relayhost` = the sink, delivery
                  settings at their defaults, and a private OpenDKIM (Debian's) as its
                  milter (smtpd_milters and non_smtpd_milters, inet on loopback). The same
                  messages, rendered by Mailhaven (so the same bytes), unsigned, are sent to
                  its smtpd by 10 connections from this process (opened before the clock
                  starts, no TLS, no AUTH: loopback is in mynetworks); timed from the first
                  message to the sink's N-th. The reference of mailhaven-http and -smtp.
                  Against mailhaven-W it is informational only (intake + relay vs a drain);
  postfix-drain   "Postfix drain + OpenDKIM", the like-for-like of mailhaven-W: the
                  messages sent first onto Postfix's hold queue (untimed), then released
                  at once (`postsuper -H ALL; postqueue -f`); timed from the release to the
                  sink's N-th message. OpenDKIM signs at intake (a milter sees a message
                  only as smtpd takes it), so Postfix's signing happens *before* the
                  release and is not in its drain time, where Mailhaven signs at send time,
                  inside its drain: the asymmetry favours Postfix. The "intake" column and
                  the "intake + drain CPU" line put both halves together for both sides
                  (Mailhaven's intake is `accept_all` in this process, without its
                  PostgreSQL server's share; Postfix's is smtpd, cleanup and OpenDKIM);
  source          the transport ceiling: `smtp-source -s 20 -m N -l 1024` straight into
                  the sink (a new connection per message, as issue 5 names it);
  source-reuse    the same with -d: one connection per session for all its messages, as
                  both Mailhaven and Postfix reuse connections.

Both sides sign with the same key: the bench domain's 2048-bit RSA key and selector, read
back from Mailhaven's vault in this process and handed to OpenDKIM, with relaxed/relaxed,
rsa-sha256 and Mailhaven's list of headers (`SignHeaders`, those present are signed; the
order of h= differs). What each side signs is printed, and 20 messages are relayed by
Postfix + OpenDKIM to a capturing sink (a transport_maps entry for one recipient domain)
and each DKIM-Signature verified by dkimpy against the public key (bench/dkim_check.py).

Printed per phase: messages/s, CPU ms per message of the sender side (the Mailhaven
processes; the whole Postfix instance, master and every daemon, and OpenDKIM;
smtp-source), the CPU of this process's clients inside the time, the CPU of
the PostgreSQL backends serving the workers (on SQLite that work is inside the workers),
the sink's CPU use, `mailhaven serve`'s peak memory, and each phase's rate as a multiple
of postfix, postfix-drain and source. Rounds alternate the order of the phases; the
summary gives medians over rounds.

Checks: the sink counted every message sent; the Mailhaven queue holds no queued copy and
every copy was delivered; Postfix's queue is empty and its log says every message sent.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiosmtplib
from sqlalchemy import func, select

from common import (
    DOMAIN,
    HOSTNAME,
    Column,
    Figure,
    backend_name,
    backends_cpu,
    backends_cpu_since,
    bench_arguments,
    bench_settings,
    free_port,
    median,
    memory_kb,
    ratio,
    record,
    run_rounds,
    seed,
    send_fields,
    serve_env,
    stop_child,
    table,
    throwaway_database,
    wait_for_port,
    wait_healthy,
    wait_until,
)
from dkim_check import (
    HEADERS,
    VERIFY_DOMAIN,
    CaptureSink,
    DomainKey,
    describe,
    export_key,
    mailhaven_signature,
    signature_tags,
    verify_all,
)
from mailhaven.credentials import service as credentials
from mailhaven.delivery.models import DELIVERED, QUEUED, Delivery
from mailhaven.delivery.transport import CONNECTIONS_PER_HOST
from mailhaven.domains.service import owned_domain
from mailhaven.messages import content
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept_all, new_message_id
from mailhaven.services import Services
from mta import (
    OpenDkim,
    PostfixInstance,
    SmtpSink,
    missing_tools,
    smtp_source,
    tree_cpu_seconds,
)

RECIPIENT_DOMAINS = 100
ENQUEUE_BATCH = 100
INJECT_CONNECTIONS = CONNECTIONS_PER_HOST
SOURCE_SESSIONS = 20
PHASES = ("mailhaven-1", "mailhaven-2", "mailhaven-1-nodkim", "mailhaven-2-nodkim",
          "mailhaven-http", "mailhaven-smtp", "postfix", "postfix-drain", "source",
          "source-reuse")
# What each reference is, in the table and in docs/BENCHMARKS.md
NAMED = {"postfix": "Postfix + OpenDKIM end to end",
         "postfix-drain": "Postfix drain + OpenDKIM",
         "source": "smtp-source into smtp-sink (transport ceiling)"}
E2E = ("mailhaven-http", "mailhaven-smtp")  # taken over the network, then delivered
E2E_WORKERS = 2  # `serve` and one `worker` beside it, as mailhaven-2
SAMPLE = 20  # messages relayed by Postfix + OpenDKIM to the capturing sink and verified
LOGIN, PASSWORD = "bench", "bench-password-for-submission"
REFERENCES = ("postfix", "postfix-drain", "source")
STARTED = b'"state": "started"'
MEMORY_GOAL_MB = 300


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    seconds: float
    cpu: float  # the sender side: worker processes, the Postfix instance, smtp-source
    db_cpu: float  # PostgreSQL backends serving the workers
    sink_cpu: float
    injector_cpu: float = 0.0  # this process's clients (SMTP, HTTP), within the time
    serve_mb: float = 0.0  # peak resident memory (VmHWM) of `mailhaven serve`
    intake_cpu: float = 0.0  # drains: the untimed intake before (see `report`)
    serve_cpu: float = 0.0  # Mailhaven: `serve`'s share of `cpu` (the rest: the workers)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    data: bytes


def fields(i: int, *, dkim: bool) -> list[tuple[str, str]]:
    """bench/common.py's transactional send, to user{i}@d{i % 100}.example."""
    form = [(k, f"Customer {i} <user{i}@d{i % RECIPIENT_DOMAINS}.example>" if k == "to" else v)
            for k, v in send_fields(i)]
    return form if dkim else [*form, ("o:dkim", "no")]


def rendered(numbers: Sequence[int]) -> list[Outgoing]:
    """The messages as the worker renders them (before signing), for Postfix (untimed)."""
    out, now = [], time.time()
    for i in numbers:
        request = build_request(fields(i, dkim=False), [])
        doc = request.document(message_id=new_message_id(DOMAIN, now), created_at=now)
        recipient = request.to[0]
        out.append(Outgoing(f"bounce+{i}-000000000000@{DOMAIN}", recipient.email,
                            content.render(doc, recipient.formatted(), None)))
    return out


async def inject(messages: Sequence[Outgoing], port: int, *,
                 login: tuple[str, str] | None = None) -> tuple[float, float]:
    """Hand the messages to an SMTP server over INJECT_CONNECTIONS reused connections;
    with `login`, as Mailhaven's submission port wants: STARTTLS (its self-signed
    certificate), AUTH (one at a time: the server lets few run at once), envelope sender
    orders@ the domain. The connections are opened (and logged in) first, as a mailer
    keeps them; (monotonic time, this process's CPU time) when the first message starts."""
    todo = iter(messages)
    clients = []
    for _ in range(INJECT_CONNECTIONS):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname=HOSTNAME,
                                 start_tls=login is not None, validate_certs=False,
                                 timeout=60)
        await client.connect()
        if login is not None:
            await client.login(*login)
        clients.append(client)

    async def session(client: aiosmtplib.SMTP) -> None:
        for message in todo:
            sender = message.sender if login is None else f"orders@{DOMAIN}"
            errors, reply = await client.sendmail(sender, [message.recipient],
                                                  message.data)
            if errors:
                raise RuntimeError(f"refused: {errors} {reply}")
        await client.quit()

    started = time.monotonic(), time.process_time()
    await asyncio.gather(*(session(client) for client in clients))
    return started


class Bench:
    def __init__(self, services: Services, account_id: str, api_key: str, sink: SmtpSink,
                 postfix: PostfixInstance, opendkim: OpenDkim, args: argparse.Namespace,
                 work: Path) -> None:
        self.services = services
        self.account_id = account_id
        self.api_key = api_key
        self.opendkim = opendkim
        self.sink = sink
        self.postfix = postfix
        self.args = args
        self.work = work
        self.deadline = time.monotonic() + args.max_seconds
        self.sequence = itertools.count()
        self.sent = 0  # messages every phase handed to the sink so far
        self.mailhaven_delivered = 0
        self.postfix_sent = 0
        self.enqueue_rates: list[float] = []
        self.worker_env = os.environ | {
            "MAILHAVEN_DATA_DIR": str(services.settings.data_dir),
            "MAILHAVEN_DATABASE_URL": services.settings.database_url,
            "MAILHAVEN_RELAYHOST": f"127.0.0.1:{sink.port}",
            "MAILHAVEN_HOSTNAME": HOSTNAME,
        }
        if args.concurrency:
            self.worker_env["MAILHAVEN_WORKER_CONCURRENCY"] = str(args.concurrency)
        self.serve_env = serve_env(services.settings.data_dir, services.settings.database_url,
                                   sink.port, free_port()) | {
            k: v for k, v in self.worker_env.items() if k == "MAILHAVEN_WORKER_CONCURRENCY"}
        self.mailhaven = shutil.which("mailhaven", path=str(Path(sys.executable).parent))
        if self.mailhaven is None:
            raise SystemExit("the mailhaven command is not beside this Python: "
                             "run with .venv/bin/python after `make`")

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("--max-seconds reached")
        return left

    def numbers(self, count: int) -> list[int]:
        return [next(self.sequence) for _ in range(count)]

    def run(self, name: str, count: int) -> Phase:
        if name in E2E:
            return self.mailhaven_phase(name, count, E2E_WORKERS, dkim=True,
                                        intake=name.removeprefix("mailhaven-"))
        if name.startswith("mailhaven-"):
            _, workers, *rest = name.split("-")
            return self.mailhaven_phase(name, count, int(workers), dkim=not rest)
        if name.startswith("postfix"):
            return self.postfix_phase(name, count, drain=name == "postfix-drain")
        return self.source_phase(name, count, reuse=name == "source-reuse")

    # -- Mailhaven ---------------------------------------------------------------------------
    def enqueue(self, numbers: list[int], *, dkim: bool) -> float:
        """Accept the messages in this process (untimed); the CPU it took here."""
        services = self.services
        started, cpu0 = time.perf_counter(), time.process_time()
        for start in range(0, len(numbers), ENQUEUE_BATCH):
            with services.db.transaction() as session:
                domain = owned_domain(session, self.account_id, DOMAIN)
                accept_all(session, services.vault, [
                    (domain, build_request(fields(i, dkim=dkim), []))
                    for i in numbers[start:start + ENQUEUE_BATCH]], services.clock)
        self.enqueue_rates.append(len(numbers) / (time.perf_counter() - started))
        return time.process_time() - cpu0

    def mailhaven_phase(self, name: str, count: int, workers: int, *, dkim: bool,
                        intake: str | None = None) -> Phase:
        """A drain (the queue filled first, untimed) or, with `intake` ("http", "smtp"),
        end to end: the messages sent to the running `serve` by INJECT_CONNECTIONS
        concurrent clients, timed from the first byte sent to the sink's N-th message."""
        numbers = self.numbers(count)
        intake_cpu = 0.0 if intake else self.enqueue(numbers, dkim=dkim)
        client = prepared = None
        if intake == "http":
            prepared = [urlencode(fields(i, dkim=True)).encode() for i in numbers]
        elif intake == "smtp":
            prepared = rendered(numbers)
        logs = [self.work / f"{name}-{k}-{self.sent}.log" for k in range(workers)]
        procs = []
        try:
            for k, log in enumerate(logs):  # `serve` first, then `worker`s beside it
                role, env = ("serve", self.serve_env) if k == 0 else ("worker", self.worker_env)
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen([self.mailhaven, role], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=out))
            if intake:
                wait_healthy(int(self.serve_env["MAILHAVEN_HTTP_PORT"]), procs[0])
                wait_for_port(int(self.serve_env["MAILHAVEN_SMTP_PORT"]), 30, procs[0])
            starts = self.started(procs, logs)
            if intake:  # CPU counted from now: start-up and the health check are not
                starts = [(0.0, tree_cpu_seconds(p.pid)) for p in procs]
            sink0, db0 = self.sink.cpu(), backends_cpu(self.services.db.engine)
            t0 = min(at for at, _ in starts)
            if intake:
                t0, own0 = asyncio.run(asyncio.wait_for(self.submit(intake, prepared),
                                                        self.remaining()))
                client = time.process_time() - own0
            end = self.sink.wait_for(self.sent + count, self.remaining())
            sink1 = self.sink.cpu()
            self.mailhaven_delivered += count
            wait_until(self.settled, min(60, self.remaining()), "the queue settled")
            each = [tree_cpu_seconds(p.pid) - cpu0 for p, (_, cpu0) in zip(procs, starts,
                                                                           strict=True)]
            cpu = sum(each)
            db = backends_cpu_since(self.services.db.engine, db0)
            serve_kb = memory_kb(procs[0].pid, "VmHWM")
        finally:
            for proc in procs:
                stop_child(proc)
        # uvicorn re-raises the SIGTERM it stopped on, once shut down: `serve` ends with -15
        if any(p.returncode not in (0, -signal.SIGTERM) for p in procs):
            raise RuntimeError(f"a worker exited with {[p.returncode for p in procs]}: {logs}")
        self.sent += count
        return Phase(name, count, end - t0, cpu, db, sink1 - sink0, client or 0.0,
                     serve_mb=serve_kb / 1024, intake_cpu=intake_cpu, serve_cpu=each[0])

    async def submit(self, intake: str, prepared: Sequence) -> tuple[float, float]:
        """Over the network to `serve`: POST /v3/{domain}/messages by httpx clients, or SMTP
        submission (STARTTLS, AUTH) by aiosmtplib clients; each message answered 2xx."""
        if intake == "smtp":
            return await inject(prepared, int(self.serve_env["MAILHAVEN_SMTP_PORT"]),
                                login=(f"{LOGIN}@{DOMAIN}", PASSWORD))
        import httpx

        todo = iter(prepared)
        url = (f"http://127.0.0.1:{self.serve_env['MAILHAVEN_HTTP_PORT']}/v3/{DOMAIN}"
               f"/messages")
        headers = {"content-type": "application/x-www-form-urlencoded"}
        limits = httpx.Limits(max_connections=INJECT_CONNECTIONS)
        async with httpx.AsyncClient(auth=("api", self.api_key), limits=limits, timeout=60,
                                     trust_env=False) as client:
            async def session() -> None:
                for body in todo:
                    answer = await client.post(url, content=body, headers=headers)
                    if answer.status_code != 200:
                        raise RuntimeError(f"POST answered {answer.status_code}: "
                                           f"{answer.text[:200]}")

            started = time.monotonic(), time.process_time()
            await asyncio.gather(*(session() for _ in range(INJECT_CONNECTIONS)))
        return started

    def started(self, procs: list[subprocess.Popen],
                logs: list[Path]) -> list[tuple[float, float]]:
        """For each worker: when it logged "started" (its first claim follows at once), and
        its CPU then (its start-up, imports and migrations check, is not counted)."""
        seen: dict[int, tuple[float, float]] = {}
        deadline = time.monotonic() + min(60, self.remaining())
        while len(seen) < len(procs):
            for k, (proc, log) in enumerate(zip(procs, logs, strict=True)):
                if k not in seen and STARTED in log.read_bytes():
                    seen[k] = (time.monotonic(), tree_cpu_seconds(proc.pid))
                elif proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}: {log}")
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not start")
            time.sleep(0.001)
        return [seen[k] for k in range(len(procs))]


    def settled(self) -> bool:
        with self.services.db.sessions() as session:
            counts = dict(session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        if counts.get(DELIVERED, 0) > self.mailhaven_delivered:
            raise RuntimeError(f"more delivered than sent: {counts}")
        return counts.get(DELIVERED, 0) == self.mailhaven_delivered and not counts.get(QUEUED)

    # -- Postfix -----------------------------------------------------------------------------
    def postfix_cpu(self) -> float:
        """The whole Postfix instance and its OpenDKIM milter."""
        return self.postfix.cpu() + self.opendkim.cpu()

    def postfix_phase(self, name: str, count: int, *, drain: bool) -> Phase:
        messages = rendered(self.numbers(count))
        postfix, injector, intake_cpu = self.postfix, 0.0, 0.0
        if drain:  # OpenDKIM signs here, at intake: before the release, untimed
            cpu0 = self.postfix_cpu()
            asyncio.run(asyncio.wait_for(inject(messages, postfix.hold_port), self.remaining()))
            wait_until(lambda: postfix.queued("hold") == count == postfix.queued(), 60,
                       "Postfix holds every message")
            intake_cpu = self.postfix_cpu() - cpu0
            t0, cpu0, sink0 = time.monotonic(), self.postfix_cpu(), self.sink.cpu()
            postfix.release_held()
        else:
            cpu0, sink0 = self.postfix_cpu(), self.sink.cpu()
            t0, own0 = asyncio.run(asyncio.wait_for(inject(messages, postfix.port),
                                                    self.remaining()))
            injector = time.process_time() - own0
        end = self.sink.wait_for(self.sent + count, self.remaining())
        sink1 = self.sink.cpu()
        wait_until(lambda: postfix.queued() == 0, min(60, self.remaining()),
                   "Postfix's queue is empty")
        cpu = self.postfix_cpu() - cpu0
        self.sent += count
        self.postfix_sent += count
        return Phase(name, count, end - t0, cpu, 0.0, sink1 - sink0, injector,
                     intake_cpu=intake_cpu)

    def check_signing(self, key: DomainKey, capture: CaptureSink) -> str:
        """Both sides' signatures printed; a sample relayed by Postfix + OpenDKIM to the
        capturing sink, every signature verified against the public key."""
        numbers = self.numbers(SAMPLE)
        messages = [Outgoing(m.sender, f"user{i}@{VERIFY_DOMAIN}", m.data)
                    for i, m in zip(numbers, rendered(numbers), strict=True)]
        asyncio.run(asyncio.wait_for(inject(messages, self.postfix.port), 60))
        kept = capture.wait_for(SAMPLE, 60)
        self.postfix_sent += SAMPLE
        verified = verify_all(key, kept)
        lines = ["what each side signs (the first DKIM-Signature of one message):",
                 describe("Mailhaven", mailhaven_signature(key, messages[0].data)),
                 describe("Postfix + OpenDKIM", signature_tags(kept[0])),
                 f"check: {verified} of {SAMPLE} messages relayed by Postfix + OpenDKIM "
                 f"carry a DKIM-Signature dkimpy verifies with the domain's public key"]
        print("\n".join(lines), flush=True)
        return "\n".join(lines)

    # -- the transport ceiling -------------------------------------------------------------
    def source_phase(self, name: str, count: int, *, reuse: bool) -> Phase:
        t0, sink0 = time.monotonic(), self.sink.cpu()
        run = smtp_source(self.sink.port, count, sessions=SOURCE_SESSIONS, reuse=reuse,
                          sender=f"orders@{DOMAIN}", recipient="user0@d0.example",
                          helo=HOSTNAME, timeout=self.remaining())
        end = self.sink.wait_for(self.sent + count, self.remaining())
        sink1 = self.sink.cpu()
        self.sent += count
        return Phase(name, count, end - t0, run.cpu, 0.0, sink1 - sink0)

    def check(self) -> None:
        if self.sink.count != self.sent:
            raise RuntimeError(f"sent {self.sent} messages, the sink counted {self.sink.count}")
        if not self.settled():
            raise RuntimeError("Mailhaven's queue is not settled")
        if self.postfix.queued():
            raise RuntimeError(f"Postfix's queue holds {self.postfix.queued()} messages")
        logged = self.postfix.delivered_lines()
        if logged != self.postfix_sent:
            raise RuntimeError(f"Postfix logged {logged} deliveries, not {self.postfix_sent}")




def add_login(services: Services, account_id: str) -> None:
    """An SMTP credential of the bench domain, for the submission phase."""
    with services.db.transaction() as session:
        domain = owned_domain(session, account_id, DOMAIN)
        credentials.create(session, services.vault, domain, LOGIN, PASSWORD, services.clock)


def report(rounds: list[dict[str, Phase]], bench: Bench, args: argparse.Namespace,
           backend: str, signing: str) -> None:
    columns = [Column("phase", 18, ""), Column("msgs/s", 8, ".0f"),
               Column("CPU ms/msg", 10, ".2f"), Column("DB ms/msg", 9, ".2f"),
               Column("CPU %", 6, ".0f"), Column("sink CPU %", 10, ".0f"),
               Column("client ms/msg", 13, ".2f"), Column("intake ms/msg", 13, ".2f"),
               Column("serve MB", 8, ".0f"),
               *(Column(f"/{ref}", max(8, len(ref) + 1), ".3f") for ref in REFERENCES)]
    rows = []
    for name in args.phases:
        phases = [r[name] for r in rounds]
        drain = name == "postfix-drain" or (name.startswith("mailhaven-") and name not in E2E)
        rows.append([
            name, median([p.rate for p in phases]),
            median([1000 * p.cpu / p.messages for p in phases]),
            median([1000 * p.db_cpu / p.messages for p in phases]),
            median([100 * (p.cpu + p.db_cpu) / p.seconds for p in phases]),
            median([100 * p.sink_cpu / p.seconds for p in phases]),
            median([1000 * p.injector_cpu / p.messages for p in phases])
            if name in (*E2E, "postfix") else "",
            median([1000 * p.intake_cpu / p.messages for p in phases]) if drain else "",
            max(p.serve_mb for p in phases) if name.startswith("mailhaven-") else "",
            *(ratio(rounds, name, ref) for ref in REFERENCES),
        ])
    lines = [f"delivery to one sink, {backend}: {args.messages} messages per round to "
             f"{RECIPIENT_DOMAINS} domains, median of {len(rounds)} rounds; Postfix "
             f"{bench.postfix.version()} + {bench.opendkim.version()}", table(columns, rows),
             "references: " + "; ".join(f"{k} = {v}" for k, v in NAMED.items()),
             "CPU ms/msg: the sender side (Mailhaven's processes; Postfix's whole instance "
             "with OpenDKIM); client: this process's SMTP/HTTP clients, inside the time; "
             "intake: drains only, the untimed intake before (Mailhaven: accept_all in this "
             "process, its DB server's share not counted; Postfix + OpenDKIM: smtpd, cleanup "
             "and the signing, all at intake)"]
    for mailhaven, postfix in (("mailhaven-2", "postfix-drain"), ("mailhaven-1", "postfix-drain")):
        if mailhaven in args.phases and postfix in args.phases:
            both = [(1000 * (r[mailhaven].intake_cpu + r[mailhaven].cpu + r[mailhaven].db_cpu)
                     / args.messages,
                     1000 * (r[postfix].intake_cpu + r[postfix].cpu) / args.messages)
                    for r in rounds]
            lines.append(f"intake + drain CPU ms/msg: {mailhaven} "
                         f"{median([m for m, _ in both]):.2f}, Postfix + OpenDKIM "
                         f"{median([p for _, p in both]):.2f}")
            break
    for name in (p for p in args.phases if p.startswith("mailhaven-")):
        phases = [r[name] for r in rounds]
        lines.append(f"{name}: CPU ms/msg by process: serve "
                     f"{median([1000 * p.serve_cpu / p.messages for p in phases]):.2f}, "
                     f"workers beside it "
                     f"{median([1000 * (p.cpu - p.serve_cpu) / p.messages for p in phases]):.2f}")
    if bench.enqueue_rates:
        lines.append(f"enqueue (accept, in-process, untimed): "
                     f"{median(bench.enqueue_rates):.0f}/s")
    lines.append(signing)
    summary = "\n".join(lines)
    print("\n" + summary)
    record("postfix", backend, figures(rounds, args), summary)


def figures(rounds: list[dict[str, Phase]], args: argparse.Namespace) -> list[Figure]:
    """Each Mailhaven phase against its like for like (the goal: at least as fast): a drain
    against Postfix's drain with OpenDKIM, end to end against Postfix + OpenDKIM end to
    end; a drain against Postfix's intake and relay, and smtp-source's ceiling, reported."""
    result = []
    for name in (p for p in args.phases if p.startswith("mailhaven-")):
        rate = median([r[name].rate for r in rounds])
        if name in E2E:
            how = ("POST /v3/{d}/messages, httpx" if name == "mailhaven-http"
                   else "SMTP submission (STARTTLS + AUTH), aiosmtplib")
            what = (f"delivered/s end to end, {how}, {INJECT_CONNECTIONS} clients -> "
                    f"serve + worker -> sink, {args.messages} messages, DKIM-signed")
            references = (("postfix", ">= 1.0", f"{NAMED['postfix']} (smtpd, "
                           f"{INJECT_CONNECTIONS} clients), msg/s"),)
        else:
            workers, signed = name.split("-")[1], not name.endswith("-nodkim")
            what = (f"delivered/s, queue -> sink, {args.messages} messages to "
                    f"{RECIPIENT_DOMAINS} domains, {workers} worker process"
                    f"{'es' if workers != '1' else ''}, "
                    f"{'DKIM-signed' if signed else 'unsigned'}")
            references = (
                ("postfix-drain", ">= 1.0" if signed else "",
                 f"{NAMED['postfix-drain']} (hold queue released; signed at intake), msg/s"),
                ("postfix", "", f"informational, not like for like: {NAMED['postfix']} "
                 "(takes and relays in its time), msg/s"),
                ("source", "", f"{NAMED['source']}, msg/s"))
        for reference, goal, label in references:
            if reference not in args.phases:
                continue
            share = ratio(rounds, name, reference)
            result.append(Figure(what, rate, "msg/s", label,
                                 median([r[reference].rate for r in rounds]), share, goal,
                                 share >= 1.0 if goal else None))
        peak = max(r[name].serve_mb for r in rounds)
        result.append(Figure(f"peak memory (VmHWM) of mailhaven serve in {name}", peak, "MB",
                             goal=f"< {MEMORY_GOAL_MB} MB", met=peak < MEMORY_GOAL_MB))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000,
                        help="messages per phase (issue 5 names 10000; 1000 keeps it short)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, of: {', '.join(PHASES)}")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="attempts in flight per worker (default: Settings')")
    parser.add_argument("--warmup", type=int, default=20,
                        help="an untimed run of each phase with this many messages (0: none)")
    bench_arguments(parser, max_seconds=600)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, Postfix's maillog) and say where")
    args = parser.parse_args()
    args.phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(args.phases) - set(PHASES)
    if unknown or not args.phases:
        parser.error(f"unknown phases: {', '.join(sorted(unknown)) or '(none)'}")
    if min(args.messages, args.rounds) < 1 or args.warmup < 0:
        parser.error("--messages and --rounds must be positive")
    if os.geteuid() != 0:
        raise SystemExit("run as root: Postfix's master starts as root, then drops privileges")
    missing = missing_tools()
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: `make bench-deps` installs Postfix")

    backend = backend_name(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="mailhaven-postfix-"))
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) walk down to their directories
    try:
        with throwaway_database(args.database_url) as database_url:
            settings = bench_settings(work, database_url)
            account_id, api_key = seed(settings)
            services = Services.start(settings, migrate=False)
            key = export_key(services, account_id)
            add_login(services, account_id)
            sink = SmtpSink(free_port())
            capture = CaptureSink(free_port())
            opendkim = OpenDkim(work / "opendkim", port=free_port(), domain=DOMAIN,
                                selector=key.selector, private_pem=key.private_pem,
                                headers=HEADERS)
            postfix = PostfixInstance(work / "postfix", port=free_port(),
                                      hold_port=free_port(), relay_port=sink.port,
                                      milter_port=opendkim.port,
                                      transports={VERIFY_DOMAIN: capture.controller.port})
            try:
                postfix.configure()
                postfix.start()
                print(f"delivery vs Postfix on {backend}: smtp-sink pid {sink.pid} on "
                      f"127.0.0.1:{sink.port}, Postfix master pid {postfix.master_pid}, "
                      f"{opendkim.version()} pid {opendkim.pid} as its milter, signing "
                      f"with {DOMAIN}'s key {key.selector} (2048-bit RSA)", flush=True)
                bench = Bench(services, account_id, api_key, sink, postfix, opendkim, args,
                              work)
                signing = bench.check_signing(key, capture)
                rounds = run_rounds(bench, args)
                bench.check()
            finally:
                postfix.stop()
                opendkim.stop()
                capture.stop()
                services.close()
                received = sink.stop()
        report(rounds, bench, args, backend, signing)
        print(f"check: the sink counted all {received} messages; Mailhaven's queue and "
              f"Postfix's are empty; Postfix logged {bench.postfix_sent} sent")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
