"""Ingest benchmark: messages per second accepted by `POST /v3/{domain}/messages`.

What is measured: N concurrent HTTP clients (httpx.AsyncClient, keep-alive, bodies
urlencoded like a real client: from, to, subject, ~1 KB of text, two o:tag, two v:) post
a fixed number of messages to the real app (`mailhaven.app.create_app`) on uvicorn, started
by this script in a child process with a fresh data directory (SQLite, or a throwaway
PostgreSQL database with --database-url). Each accepted message is sealed, queued and its
`accepted` event recorded, exactly as in production; no delivery worker runs (nothing is
sent anywhere), and the child logs one JSON line per request, as `mailhaven serve` does.

The reference, in the same server and the same run: a bare endpoint mounted on the same app
(`POST /bench/bare/{domain}/messages`): same uvicorn, same FastAPI middleware (request log
and metrics), same form parsing (`mailhaven.http.read_form`), but no authentication, no
database, no sealing; it returns a constant JSON body. send/bare is the share of the stack's
ceiling that the product keeps; server CPU ms per request is measured from /proc.

Rounds alternate the order of the two endpoints; the summary gives medians over rounds.
Everything stays on 127.0.0.1 and each run stops by itself (bounded by --requests, --rounds
and --max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI, Request

from common import (
    DOMAIN,
    Column,
    backend_name,
    bench_settings,
    free_port,
    median,
    percentile,
    process_cpu_seconds,
    seed,
    send_body,
    stop_child,
    table,
    throwaway_database,
)

BARE_PATH = "/bench/bare/{domain_name}/messages"
FORM = {"content-type": "application/x-www-form-urlencoded"}


# -- the server (child process) ----------------------------------------------------------
def serve(port: int, data_dir: Path, database_url: str | None) -> None:
    """The real app plus the bare reference route, on uvicorn, until SIGTERM."""
    import uvicorn

    from mailhaven.app import create_app
    from mailhaven.http import read_form
    from mailhaven.services import Services

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    settings = bench_settings(data_dir, database_url, http_port=port)
    services = Services.start(settings, migrate=False)  # the parent migrated and seeded
    app: FastAPI = create_app(services)

    # `Request` is imported at module level: FastAPI resolves this (postponed) annotation
    # in the module's globals.
    async def bare(domain_name: str, request: Request) -> dict:
        await read_form(request)
        return {"id": f"<bare@{domain_name}>", "message": "Queued. Thank you."}

    app.add_api_route(BARE_PATH, bare, methods=["POST"], include_in_schema=False)
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
    """N clients, each an httpx.AsyncClient with one keep-alive connection of its own.

    (One shared AsyncClient with an N-connection pool costs the client several times more
    CPU per request at N=16, enough to make the bare reference client-bound on 2 cores.)
    """

    def __init__(self, clients: list[httpx.AsyncClient], server_pid: int,
                 deadline: float) -> None:
        self.clients = clients
        self.server_pid = server_pid
        self.deadline = deadline
        self.sequence = itertools.count()  # a new recipient for every message ever sent
        self.sent_ok = 0

    async def phase(self, endpoint: str, path: str, count: int) -> Phase:
        bodies = [send_body(next(self.sequence)) for _ in range(count)]  # built untimed
        todo = iter(bodies)
        latencies: list[float] = []
        failures: list[str] = []

        async def client_loop(client: httpx.AsyncClient) -> None:
            for body in todo:
                if time.monotonic() > self.deadline:
                    raise TimeoutError("--max-seconds reached")
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=FORM)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

        cpu0, own0 = process_cpu_seconds(self.server_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for client in self.clients))
        seconds = time.perf_counter() - started
        cpu1, own1 = process_cpu_seconds(self.server_pid), time.process_time()
        if failures:
            raise RuntimeError(f"{len(failures)} of {count} {endpoint} requests failed, "
                               f"first: {failures[0]}")
        if endpoint == "send":
            self.sent_ok += count
        return Phase(endpoint, count, seconds, latencies, cpu1 - cpu0, own1 - own0)


async def run_load(port: int, server_pid: int, api_key: str, args: argparse.Namespace,
                   deadline: float) -> tuple[list[tuple[Phase, Phase]], int]:
    auth = base64.b64encode(f"api:{api_key}".encode()).decode()
    paths = {"send": f"/v3/{DOMAIN}/messages", "bare": BARE_PATH.format(domain_name=DOMAIN)}
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"authorization": f"Basic {auth}"})) for _ in range(args.clients)]
        load = Load(clients, server_pid, deadline)
        for endpoint in ("bare", "send"):  # warm-up: connections, imports, caches
            await load.phase(endpoint, paths[endpoint], args.warmup)
        rounds: list[tuple[Phase, Phase]] = []
        for number in range(args.rounds):
            order = ("bare", "send") if number % 2 == 0 else ("send", "bare")
            done = {e: await load.phase(e, paths[e], args.requests) for e in order}
            rounds.append((done["send"], done["bare"]))
            print(f"  round {number + 1}: send {done['send'].rps:7.1f}/s   "
                  f"bare {done['bare'].rps:7.1f}/s   "
                  f"ratio {done['send'].rps / done['bare'].rps:.3f}", flush=True)
        return rounds, load.sent_ok


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.1)


def count_stored(data_dir: Path, database_url: str | None) -> int:
    from sqlalchemy import func, select

    from mailhaven.sending.models import Message
    from mailhaven.services import Services

    services = Services.start(bench_settings(data_dir, database_url), migrate=False)
    try:
        with services.db.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)
    finally:
        services.close()


def report(rounds: list[tuple[Phase, Phase]], args: argparse.Namespace, backend: str) -> None:
    ms = 1000.0
    columns = [Column("endpoint", 8, ""), Column("req/s", 8, ".1f"),
               Column("p50 ms", 7, ".1f"), Column("p95 ms", 7, ".1f"),
               Column("srv CPU ms/req", 14, ".2f"), Column("srv CPU %", 9, ".0f"),
               Column("client CPU ms/req", 17, ".2f")]
    rows = []
    for index, name in ((1, "bare"), (0, "send")):
        phases = [r[index] for r in rounds]
        rows.append([
            name,
            median([p.rps for p in phases]),
            median([ms * percentile(p.latencies, 50) for p in phases]),
            median([ms * percentile(p.latencies, 95) for p in phases]),
            median([p.server_ms_per_request for p in phases]),
            median([100 * p.server_cpu / p.seconds for p in phases]),
            median([ms * p.client_cpu / p.requests for p in phases]),
        ])
    ratio = median([send.rps / bare.rps for send, bare in rounds])
    cpu_ratio = median([send.server_ms_per_request / bare.server_ms_per_request
                        for send, bare in rounds])
    print()
    print(f"ingest, {backend}: {args.clients} clients, {args.requests} requests per endpoint "
          f"per round, median of {len(rounds)} rounds")
    print(table(columns, rows))
    print(f"send/bare throughput ratio: {ratio:.3f}   "
          f"(server CPU per request: send = {cpu_ratio:.1f} x bare)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per endpoint per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=100,
                        help="untimed requests per endpoint before the rounds")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432/"
                             "postgres; a throwaway database is created on it and dropped")
    parser.add_argument("--max-seconds", type=float, default=900,
                        help="give up (non-zero exit) if the load has not finished by then")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
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
        port = free_port()
        log_path = data_dir / "server.log"
        command = [sys.executable, __file__, "--serve", "--port", str(port),
                   "--data-dir", str(data_dir)]
        if database_url:
            command += ["--database-url", database_url]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(command, stdout=log_file, stderr=log_file)
            try:
                wait_healthy(port, proc)
                print(f"ingest on {backend}: server pid {proc.pid} on 127.0.0.1:{port}",
                      flush=True)
                deadline = time.monotonic() + args.max_seconds
                rounds, sent = asyncio.run(run_load(port, proc.pid, api_key, args, deadline))
            except BaseException:
                stop_child(proc)
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                print("server log (tail):\n" + "\n".join(tail), file=sys.stderr)
                raise
            stop_child(proc)
        stored = count_stored(data_dir, database_url)
        report(rounds, args, backend)
        if stored != sent:
            raise SystemExit(f"accepted {sent} messages but {stored} are stored")
        print(f"check: {stored} messages accepted and stored")


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
