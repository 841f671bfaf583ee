"""Ingest benchmark: messages per second accepted by `POST /v3/{domain}/messages`.

What is measured: 64 concurrent clients (each one keep-alive connection) post a fixed
number of messages to the real app (`mailhaven.app.create_app`) on uvicorn, started by this
script in a child process with a fresh data directory (SQLite, or a throwaway PostgreSQL
database with --database-url), configured as `mailhaven serve` configures it (one JSON log
line per request). Each message is multipart/form-data as the SDKs send a file: from, to (a
new recipient every message), subject, ~1 KB of text, two o:tag, two v:, and a 10 KB
attachment. A 200 comes after the message, its deliveries and its `accepted` event are
committed (`sending.service.send` returns from inside `db.transaction()`). No delivery
worker runs: this is the API alone.

The reference, in the same server and the same run (issue 5): a trivial authenticated
endpoint mounted on the same app, `GET /bench/ping`: the same uvicorn, the same middleware
(request log, metrics), Basic auth through the real `current_account` dependency and the
API-key cache, a constant JSON answer. send/ref is the figure, goal >= 0.6 (issue 17;
issue 5 had 0.5).

Also measured, to say where the difference goes: `POST /bench/parse/{domain}/messages`,
authenticated the same way, reading the same multipart body with `mailhaven.http.read_form`
and answering a constant: the HTTP and form-parsing share of a send, without the product.

The client writes prepared requests on raw keep-alive connections (`common.RawConnection`),
so it takes little CPU from the server it measures on a small machine; its CPU per request
is printed. Rounds rotate the order of the phases; the summary gives medians over rounds.
Everything stays on 127.0.0.1 and each run stops by itself (--requests, --rounds,
--max-seconds). At the end the server is killed with SIGKILL (no graceful shutdown) and
every message id it answered 200 for is looked up in the database, with its delivery; one
message's stored attachment is compared byte for byte with what was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from common import (
    DOMAIN,
    Column,
    Figure,
    RawConnection,
    attachment,
    backend_name,
    basic_auth,
    bench_arguments,
    bench_settings,
    median,
    multipart_send,
    percentile,
    process_cpu_seconds,
    record,
    script_server,
    seed,
    table,
    throwaway_database,
)

# With Request, for the reference routes' annotations: FastAPI resolves them in the globals.
from mailhaven.deps import AccountDep

REF_PATH = "/bench/ping"
PARSE_PATH = "/bench/parse/{domain_name}/messages"
PHASES = ("ref", "parse", "send")
GOAL = 0.6  # send/ref, issue 17 (issue 5 had 0.5)


# -- the server (child process) ----------------------------------------------------------
def serve(port: int, data_dir: Path, database_url: str | None) -> None:
    """The real app plus the reference routes, on uvicorn, until SIGTERM."""
    import uvicorn

    from mailhaven.app import create_app
    from mailhaven.http import read_form
    from mailhaven.services import Services

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    settings = bench_settings(data_dir, database_url, http_port=port)
    services = Services.start(settings, migrate=False)  # the parent migrated and seeded
    app: FastAPI = create_app(services)

    async def ping(_account_id: AccountDep) -> dict:
        return {"message": "pong"}

    async def parse(domain_name: str, request: Request, _account_id: AccountDep) -> dict:
        await read_form(request)
        return {"id": f"<parsed@{domain_name}>", "message": "Queued. Thank you."}

    app.add_api_route(REF_PATH, ping, methods=["GET"], include_in_schema=False)
    app.add_api_route(PARSE_PATH, parse, methods=["POST"], include_in_schema=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    try:
        server.run()  # uvicorn handles SIGTERM/SIGINT: finish in-flight requests, then stop
    finally:
        services.close()


# -- the load (this process) -------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    endpoint: str
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float  # seconds of server CPU used during the phase
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.requests


class Load:
    def __init__(self, connections: list[RawConnection], server_pid: int,
                 deadline: float) -> None:
        self.connections = connections
        self.server_pid = server_pid
        self.deadline = deadline
        self.sequence = itertools.count()  # a new recipient for every message ever sent
        self.accepted: list[str] = []  # the ids the API answered with

    def prepared(self, endpoint: str, count: int) -> list[bytes]:
        """The requests of a phase, built untimed (the same for every connection)."""
        conn = self.connections[0]
        if endpoint == "ref":
            return [conn.prepare("GET", REF_PATH)] * count
        path = (f"/v3/{DOMAIN}/messages" if endpoint == "send"
                else PARSE_PATH.format(domain_name=DOMAIN))
        out = []
        for _ in range(count):
            body, content_type = multipart_send(next(self.sequence))
            out.append(conn.prepare("POST", path, body, content_type))
        return out

    async def phase(self, endpoint: str, count: int) -> Phase:
        todo = iter(self.prepared(endpoint, count))
        latencies: list[float] = []
        failures: list[str] = []
        answers: list[bytes] = []

        async def client_loop(conn: RawConnection) -> None:
            for request in todo:
                if time.monotonic() > self.deadline:
                    raise TimeoutError("--max-seconds reached")
                started = time.perf_counter()
                status, body = await conn.request(request)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(f"{status} {body[:200]!r}")
                answers.append(body)

        cpu0, own0 = process_cpu_seconds(self.server_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(conn) for conn in self.connections))
        seconds = time.perf_counter() - started
        cpu1, own1 = process_cpu_seconds(self.server_pid), time.process_time()
        if failures:
            raise RuntimeError(f"{len(failures)} of {count} {endpoint} requests failed, "
                               f"first: {failures[0]}")
        if endpoint == "send":
            self.accepted += [json.loads(a)["id"].strip("<>") for a in answers]
        return Phase(endpoint, count, seconds, latencies, cpu1 - cpu0, own1 - own0)


async def run_load(port: int, server_pid: int, api_key: str, args: argparse.Namespace,
                   deadline: float) -> tuple[list[dict[str, Phase]], list[str]]:
    connections = [RawConnection(port, basic_auth(api_key)) for _ in range(args.clients)]
    try:
        load = Load(connections, server_pid, deadline)
        for endpoint in PHASES:  # warm-up: connections, imports, caches
            await load.phase(endpoint, args.warmup)
        rounds: list[dict[str, Phase]] = []
        for number in range(args.rounds):
            shift = number % len(PHASES)
            order = PHASES[shift:] + PHASES[:shift]
            done = {e: await load.phase(e, args.requests) for e in order}
            rounds.append(done)
            print(f"  round {number + 1}: send {done['send'].rps:7.1f}/s   "
                  f"parse {done['parse'].rps:7.1f}/s   ref {done['ref'].rps:7.1f}/s   "
                  f"send/ref {done['send'].rps / done['ref'].rps:.3f}", flush=True)
        return rounds, load.accepted
    finally:
        for conn in connections:
            await conn.close()


def check_stored(data_dir: Path, database_url: str | None, accepted: list[str]) -> int:
    """Every accepted message id is stored, with one queued delivery; one message's
    attachment reads back as sent. Returns how many messages are stored."""

    from sqlalchemy import func, select

    from mailhaven.delivery.models import Delivery
    from mailhaven.events.models import Event
    from mailhaven.messages.document import Document
    from mailhaven.messages.models import Message
    from mailhaven.services import Services
    from mailhaven.vault import VaultKey

    services = Services.start(bench_settings(data_dir, database_url), migrate=False)
    try:
        with services.db.sessions() as session:
            # Message-IDs are kept only as a blind index, in the `accepted` events.
            account_id = session.scalar(select(Message.account_id).limit(1)) or ""
            index = {services.vault.message_index(account_id, m): m for m in accepted}
            found = dict(session.execute(select(Event.message_id_index, Event.storage_key)
                                         .where(Event.event == "accepted")).all())
            stored = {index[i] for i in found if i in index}
            messages = int(session.scalar(select(func.count()).select_from(Message)) or 0)
            deliveries = int(session.scalar(select(func.count()).select_from(Delivery)) or 0)
            missing = set(accepted) - stored
            if missing or messages != len(accepted) or deliveries != len(accepted):
                raise SystemExit(f"accepted {len(accepted)} messages; {messages} stored, "
                                 f"{deliveries} deliveries, {len(missing)} ids missing")
            last = found[services.vault.message_index(account_id, accepted[-1])]
            message = session.scalars(select(Message).where(Message.id == last)).one()
            key = session.get(VaultKey, message.content_key_id)
            assert key is not None and message.content_sealed is not None
            doc = Document.load(services.vault.open(key, message.content_sealed,
                                                   f"message:{message.id}"))
            sent_number = int(doc.variables["order-id"])
            if doc.attachments[0].content != attachment(sent_number):
                raise SystemExit(f"message {message.id}: the stored attachment differs")
        return len(stored)
    finally:
        services.close()


def report(rounds: list[dict[str, Phase]], args: argparse.Namespace, backend: str) -> None:
    ms = 1000.0
    columns = [Column("endpoint", 8, ""), Column("req/s", 8, ".1f"),
               Column("p50 ms", 7, ".1f"), Column("p95 ms", 7, ".1f"),
               Column("srv CPU ms/req", 14, ".2f"), Column("srv CPU %", 9, ".0f"),
               Column("client CPU ms/req", 17, ".3f")]
    rows = []
    for name in PHASES:
        phases = [r[name] for r in rounds]
        rows.append([
            name,
            median([p.rps for p in phases]),
            median([ms * percentile(p.latencies, 50) for p in phases]),
            median([ms * percentile(p.latencies, 95) for p in phases]),
            median([p.server_ms_per_request for p in phases]),
            median([100 * p.server_cpu / p.seconds for p in phases]),
            median([ms * p.client_cpu / p.requests for p in phases]),
        ])
    ratio = median([r["send"].rps / r["ref"].rps for r in rounds])
    parse_ratio = median([r["parse"].rps / r["ref"].rps for r in rounds])
    cpu_ratio = median([r["send"].server_ms_per_request / r["ref"].server_ms_per_request
                        for r in rounds])
    summary = "\n".join([
        f"ingest, {backend}: {args.clients} clients, {args.requests} requests per endpoint "
        f"per round, multipart 1 KB text + 10 KB attachment, median of {len(rounds)} rounds",
        table(columns, rows),
        f"send/ref throughput ratio: {ratio:.3f} (goal >= {GOAL}: "
        f"{'met' if ratio >= GOAL else 'not met'})   parse/ref: {parse_ratio:.3f}   "
        f"server CPU per request: send = {cpu_ratio:.1f} x ref"])
    print("\n" + summary)
    send_rps, ref_rps = (median([r[name].rps for r in rounds]) for name in ("send", "ref"))
    record("ingest", backend, [Figure(
        f"accepted/s, POST /v3/{{d}}/messages, {args.clients} clients, 1 KB text + 10 KB "
        "attachment, committed", send_rps, "msg/s", "trivial authenticated endpoint, req/s",
        ref_rps, ratio, f">= {GOAL}", ratio >= GOAL)], summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per endpoint per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200,
                        help="untimed requests per endpoint before the rounds")
    bench_arguments(parser, max_seconds=300, child=True)
    args = parser.parse_args()
    if args.serve:  # the child
        serve(args.port, args.data_dir, args.database_url)
        return
    if min(args.clients, args.requests, args.rounds) < 1 or args.warmup < 0:
        parser.error("--clients, --requests and --rounds must be positive")

    backend = backend_name(args.database_url)
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(args.database_url) as database_url:
        data_dir = Path(tmp)
        _, api_key = seed(bench_settings(data_dir, database_url))
        with script_server(__file__, data_dir, database_url) as (proc, port):
            print(f"ingest on {backend}: server pid {proc.pid} on 127.0.0.1:{port}", flush=True)
            deadline = time.monotonic() + args.max_seconds
            rounds, accepted = asyncio.run(run_load(port, proc.pid, api_key, args, deadline))
            # SIGKILL, no graceful shutdown: whatever the server answered 200 for must
            # already be committed (check_stored looks each one up).
            proc.kill()
            proc.wait(10)
        stored = check_stored(data_dir, database_url, accepted)
        report(rounds, args, backend)
        print(f"check: server killed (SIGKILL); all {stored} messages it accepted are stored, "
              f"each with its delivery; an attachment read back intact")


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
