"""Inbound mail at the MX against Postfix's smtpd: messages per second received, and received
then forwarded to an app by a route.

The same load, Postfix's `smtp-source -s 20 -m N -l 1024 -N` (20 sessions in parallel, a
connection per message, ~1 KB of payload, one recipient each, numbered so that no two are
the same), goes into:

  mailhaven-intake   the MX of `mailhaven serve` (only `serve` runs the MX: its inbound
                     processor runs beside it in the same process, and so do its API, its
                     delivery worker and the other runners, idle here), configured by the
                     environment as an operator runs it, for a domain an account owns that
                     has no routes. Each message's `250` comes after its commit: SPF, DKIM
                     and DMARC evaluated (against a name server of this script on loopback
                     that publishes the sender's SPF record and DMARC policy: every lookup
                     answered at once), the message sealed, one `inbound_messages` row.
                     Time: from smtp-source's start to its exit (every message had its 250);
  postfix            Postfix 3.x from Debian's packages, a private instance (bench/mta.py):
                     an smtpd listener that is an MX for the same domains (relay_domains,
                     every other recipient refused) and puts each message on hold: queued
                     (its `250` after the queue file is written and fsynced) and never
                     delivered. It checks no SPF, DKIM or DMARC (no milter, no policy
                     service): smtpd's own intake only;
  mailhaven-forward  the same intake, for a domain of another account whose one route is
                     `match_recipient(".*")` -> `forward("http://127.0.0.1:PORT/hook")`: each
                     message is processed (the route evaluated, the POST queued) and POSTed
                     in Mailgun's inbound format to an HTTP receiver of this script (asyncio,
                     answers 200 at once and counts). MAILHAVEN_WEBHOOK_ALLOW_PRIVATE=1 lets
                     the POSTs go to loopback. Time: from smtp-source's start until the N-th
                     POST arrived: intake, processing and POST end to end.

Printed per phase: messages/s, CPU ms per message of the server side (the `mailhaven serve`
process, from the phase's start until its messages are all processed and their POSTs
settled; the whole Postfix instance, master and every daemon) and of the PostgreSQL backends
serving Mailhaven, and each Mailhaven phase's rate against Postfix's (median over rounds of
the per-round ratios; rounds alternate the order of the phases). Between phases the
processor's queue is left to drain, so that no phase pays for the one before.

Checks: Mailhaven holds exactly one `inbound_messages` row per message sent, each processed;
the receiver got exactly one POST (signed, with its `recipient`) per forwarded message;
Postfix's hold queue one file per message sent (emptied between phases).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from sqlalchemy import func, select

from common import (
    DOMAIN,
    Arrivals,
    Figure,
    backend_name,
    backends_cpu,
    backends_cpu_since,
    bench_settings,
    free_port,
    mailhaven_serve,
    median,
    process_cpu_seconds,
    ratio,
    record,
    run_rounds,
    run_script,
    seed,
    throwaway_database,
    wait_for_port,
    wait_until,
)
from mailhaven.inbound.models import PROCESSED, InboundMessage, RoutePost
from mailhaven.routes import service as routes
from mailhaven.services import Services
from mailhaven.webhooks.models import SENT
from mta import PostfixInstance
from smtp_intake import SESSIONS, Phase, check_intake_tools, intake_arguments, phases_table
from smtp_intake import Bench as IntakeBench

PHASES = ("mailhaven-intake", "postfix", "mailhaven-forward")
FORWARD_DOMAIN = "in.bench.test"  # another account's domain, the one with the route
SENDER_DOMAIN = "shop.sender.test"  # the senders' domain: its SPF and DMARC published here


# -- a name server: the sender's SPF record and DMARC policy, nothing else -------------------
class NameServer:
    """A UDP name server on 127.0.0.1 in a thread of this script: what the MX looks up for
    smtp-source's mail (SPF of the envelope sender, DMARC of the From) answered at once;
    any other name does not exist."""

    RECORDS = {
        (SENDER_DOMAIN, "TXT"): "v=spf1 ip4:127.0.0.0/8 -all",
        (f"_dmarc.{SENDER_DOMAIN}", "TXT"): "v=DMARC1; p=none",
    }

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            with contextlib.suppress(Exception):  # not a query: nothing to answer
                self.sock.sendto(self.answer(dns.message.from_wire(data)).to_wire(), peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        self.queries += 1
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        value = self.RECORDS.get((name, dns.rdatatype.to_text(question.rdtype)))
        if value is not None:
            response.answer.append(dns.rrset.from_text(
                question.name, 60, dns.rdataclass.IN, question.rdtype, f'"{value}"'))
        elif not any(known == name for known, _ in self.RECORDS):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def close(self) -> None:
        self.sock.close()


# -- the app the route forwards to ----------------------------------------------------------
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 (asyncio, in a thread of this script, keep-alive) that
    answers every request 200 with an empty body at once and counts the POSTs that carry a
    Mailgun inbound payload (signed, with its recipient); anything else counts as wrong."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals = Arrivals("the HTTP receiver")
        self.wrong = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)
        wait_for_port(self.port, 10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port))
        started.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if head.startswith(b"POST /hook ") and b"signature=" in body \
                        and b"recipient=" in body:
                    self.arrivals.reached(self.arrivals.count + 1, time.monotonic())
                else:
                    self.wrong += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# -- the phases ---------------------------------------------------------------------------
class Bench(IntakeBench):
    sender = f"orders@{SENDER_DOMAIN}"
    recipient = f"user@{DOMAIN}"

    def __init__(self, services: Services, postfix: PostfixInstance, mx_port: int,
                 serve: subprocess.Popen, receiver: Receiver, args: argparse.Namespace,
                 ) -> None:
        super().__init__(services, postfix, mx_port, serve, args)
        self.receiver = receiver
        self.received = 0  # messages the MX should hold, both domains
        self.forwarded = 0  # POSTs the receiver should have had

    def run(self, name: str, count: int) -> Phase:
        if name == "postfix":
            return self.postfix_phase(name, count, reuse=False)
        return self.received_phase(name, count, forward=name == "mailhaven-forward")

    def received_phase(self, name: str, count: int, *, forward: bool) -> Phase:
        engine = self.services.db.engine
        cpu0, db0 = process_cpu_seconds(self.smtp.pid), backends_cpu(engine)
        recipient = f"user@{FORWARD_DOMAIN}" if forward else self.recipient
        t0 = time.monotonic()
        seconds, source_cpu = self.source(self.smtp_port, count, reuse=False,
                                          recipient=recipient)
        self.received += count
        if forward:
            self.forwarded += count
            seconds = self.receiver.arrivals.wait_for(self.forwarded, self.remaining()) - t0
        wait_until(self.settled, min(120, self.remaining()), "the inbound queue drained",
                   interval=0.05)
        cpu = process_cpu_seconds(self.smtp.pid) - cpu0
        return Phase(name, count, seconds, cpu, backends_cpu_since(engine, db0), source_cpu)

    def settled(self) -> bool:
        """Every message received is processed, every POST sent; more is an error."""
        with self.services.db.sessions() as session:
            rows = dict(session.execute(select(InboundMessage.status, func.count())
                                        .group_by(InboundMessage.status)).all())
            posts = dict(session.execute(select(RoutePost.status, func.count())
                                         .group_by(RoutePost.status)).all())
        if sum(rows.values()) > self.received or set(rows) - {PROCESSED, "waiting"}:
            raise RuntimeError(f"inbound rows: {rows}, {self.received} messages sent")
        if sum(posts.values()) > self.forwarded or set(posts) - {SENT, "pending"}:
            raise RuntimeError(f"route POSTs: {posts}, {self.forwarded} forwarded")
        return rows.get(PROCESSED, 0) == self.received and posts.get(SENT, 0) == self.forwarded

    def check(self) -> None:
        wait_until(self.settled, 60, "the inbound queue drained", interval=0.05)
        if self.receiver.arrivals.count != self.forwarded or self.receiver.wrong:
            raise RuntimeError(f"the receiver got {self.receiver.arrivals.count} POSTs (and "
                               f"{self.receiver.wrong} wrong requests), not {self.forwarded}")


def add_route(services: Services, account_id: str, url: str) -> None:
    """The forwarding account's one route, created as `POST /v3/routes` creates it."""
    with services.db.transaction() as session:
        routes.create(session, services.vault, account_id, [
            ("priority", "0"), ("description", "bench: every recipient to the app"),
            ("expression", 'match_recipient(".*")'), ("action", f'forward("{url}")')],
            services.clock.now())


# -- the report ---------------------------------------------------------------------------
def report(rounds: list[dict[str, Phase]], postfix_version: str, args: argparse.Namespace,
           backend: str) -> None:
    summary = "\n".join([
        f"Inbound at the MX, {backend}: smtp-source -s {SESSIONS} -m {args.messages} -l 1024 "
        f"-N per phase, median of {len(rounds)} rounds; Postfix {postfix_version}",
        phases_table(rounds, args.phases, lambda _: "postfix")])
    print("\n" + summary)
    what = {"mailhaven-intake": "received/s at the MX (SPF, DKIM, DMARC, sealed, committed)",
            "mailhaven-forward": "received and forwarded/s, MX -> route -> POST to an app"}
    figures = [
        Figure(f"{what[name]}, smtp-source -s {SESSIONS}", median([r[name].rate for r in rounds]),
               "msg/s", "Postfix smtpd as an MX, the same load, queued on hold, msg/s",
               median([r["postfix"].rate for r in rounds]), ratio(rounds, name, "postfix"))
        for name in args.phases if name in what and "postfix" in args.phases]
    record("inbound", backend, figures, summary)


@contextlib.contextmanager
def private_postfix(work: Path) -> Iterator[PostfixInstance]:
    postfix = PostfixInstance(work / "postfix", port=free_port(), hold_port=free_port(),
                              relay_port=free_port(), mx_domains=(DOMAIN, FORWARD_DOMAIN))
    try:
        postfix.configure()
        postfix.start()
        yield postfix
    finally:
        postfix.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args = intake_arguments(parser, PHASES, messages=1000)
    mailhaven = check_intake_tools()
    backend = backend_name(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="mailhaven-inbound-"))
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) walk down to their directories
    names, receiver = NameServer(), Receiver()
    try:
        with throwaway_database(args.database_url) as database_url:
            settings = bench_settings(work, database_url)
            seed(settings)
            forwarding_account, _ = seed(settings, FORWARD_DOMAIN)
            services = Services.start(settings, migrate=False)
            add_route(services, forwarding_account, receiver.url)
            mx_port = free_port()
            try:
                with mailhaven_serve(work, database_url, free_port(),
                                     MAILHAVEN_MX_PORT=str(mx_port),
                                     MAILHAVEN_WEBHOOK_ALLOW_PRIVATE="1",
                                     MAILHAVEN_DNS_NAMESERVER=f"127.0.0.1:{names.port}",
                                     ) as (serve, _), private_postfix(work) as postfix:
                    wait_for_port(mx_port, 30, serve)
                    print(f"Inbound vs Postfix on {backend}: {mailhaven} serve pid {serve.pid}, "
                          f"MX on 127.0.0.1:{mx_port}; Postfix master pid {postfix.master_pid}",
                          flush=True)
                    bench = Bench(services, postfix, mx_port, serve, receiver, args)
                    rounds = run_rounds(bench, args)
                    bench.check()
                    version = postfix.version()
            finally:
                services.close()
        report(rounds, version, args, backend)
        print(f"check: the MX stored and processed all {bench.received} messages, the app got "
              f"all {bench.forwarded} POSTs; Postfix held every message of its phases; "
              f"{names.queries} DNS queries answered")
    finally:
        receiver.close()
        names.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_script(main)
