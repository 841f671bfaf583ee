"""Shared helpers of the benchmarks: a throwaway database, seeding, child processes, statistics.

Run as a script it is the SMTP sink of `latency.py`: an aiosmtpd server on 127.0.0.1 that
accepts every message and keeps nothing (`python bench/common.py sink --port 2600`). It runs
in its own process so that, on a small machine, the sink does not share the GIL with the
sender being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mailhaven.config import Settings
from mailhaven.wiring import wire

wire()  # the scripts record events through the services as the API and the worker do

HOSTNAME = "bench.mailhaven.test"  # HELO name and Settings.hostname; never resolved
DOMAIN = "mg.bench.test"  # the sending domain the benchmarks create
TEXT = ("Hello {i},\n\nYour order #{i} has shipped and should arrive within three working "
        "days. You can follow the parcel from your account page at any time.\n\n") * 6


# -- processes and ports ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(interval)


def stop_child(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child we started, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class Arrivals:
    """A count that grows as things arrive at a sink (messages, POSTs), with the monotonic
    time each count was reached, for another thread to wait for the N-th."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._arrived: list[float] = []  # monotonic time of each count reached, in order
        self._changed = threading.Condition()

    def reached(self, count: int, now: float) -> None:
        with self._changed:
            self._arrived.extend([now] * (count - len(self._arrived)))
            self.count = max(self.count, count)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> float:
        """The monotonic time the `count`-th arrived; waits for it."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.count >= count, timeout):
                raise TimeoutError(f"{self.what} has {self.count}, not {count}, "
                                   f"after {timeout:.0f}s")
            return self._arrived[count - 1]


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); 0.0 where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def memory_kb(pid: int, field: str = "VmHWM") -> int:
    """A process's peak (VmHWM) or current (VmRSS) resident memory in kB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Block until the API on 127.0.0.1:port answers /healthz with 200."""
    import httpx

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


def serve_env(data_dir: Path, database_url: str | None, relay_port: int,
              http_port: int, **extra: str) -> dict[str, str]:
    """The environment `mailhaven serve` is configured by: this data dir and database,
    `relayhost` at the sink, HTTP on 127.0.0.1, every other port it listens on free (other
    Mailhavens may run on this machine); `extra` settings (MAILHAVEN_…) over these."""
    return {**os.environ, "MAILHAVEN_DATA_DIR": str(data_dir),
            "MAILHAVEN_DATABASE_URL": database_url or "",
            "MAILHAVEN_HTTP_HOST": "127.0.0.1", "MAILHAVEN_HTTP_PORT": str(http_port),
            "MAILHAVEN_RELAYHOST": f"127.0.0.1:{relay_port}",
            "MAILHAVEN_HOSTNAME": HOSTNAME,
            "MAILHAVEN_MX_HOST": "127.0.0.1", "MAILHAVEN_MX_PORT": str(free_port()),
            "MAILHAVEN_SMTP_HOST": "127.0.0.1", "MAILHAVEN_SMTP_PORT": str(free_port()),
            "MAILHAVEN_SMTPS_PORT": "0",
            # no DNS query leaves the machine: a lookup would go to a closed loopback port
            "MAILHAVEN_DNS_NAMESERVER": f"127.0.0.1:{free_port()}", **extra}


@contextlib.contextmanager
def mailhaven_serve(data_dir: Path, database_url: str | None, relay_port: int,
                    **extra: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """The real `mailhaven serve` (API and delivery worker in one process) as an operator
    runs it, configured by the environment: the data dir, the database, `relayhost` at the
    sink, `extra` settings; its log in data_dir/serve.log. Yields (process, HTTP port);
    stopped at the end."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("mailhaven")), "serve"]
    with _server(command, serve_env(data_dir, database_url, relay_port, port, **extra),
                 data_dir / "serve.log", port) as proc:
        yield proc, port


@contextlib.contextmanager
def script_server(script: str, data_dir: Path,
                  database_url: str | None) -> Iterator[tuple[subprocess.Popen, int]]:
    """`script --serve`: a benchmark's own server child (the app on uvicorn, with what the
    script mounts on it) on a free port, its log in data_dir/server.log. Yields (process,
    HTTP port); stopped at the end if the caller has not killed it."""
    port = free_port()
    command = [sys.executable, script, "--serve", "--port", str(port), "--data-dir",
               str(data_dir), *(["--database-url", database_url] if database_url else [])]
    with _server(command, None, data_dir / "server.log", port) as proc:
        yield proc, port


@contextlib.contextmanager
def _server(command: list[str], env: dict[str, str] | None, log_path: Path,
            port: int) -> Iterator[subprocess.Popen]:
    """A child serving HTTP on `port`, once healthy; the tail of its log is printed if
    anything fails while it runs."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
        try:
            wait_healthy(port, proc)
            yield proc
        except BaseException:
            stop_child(proc)
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print("server log (tail):\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            stop_child(proc)


def bench_arguments(parser: argparse.ArgumentParser, *, max_seconds: float,
                    child: bool = False) -> None:
    """The options every benchmark takes; with `child`, the hidden ones of the server it
    starts as a child process of its own script (`script_server`)."""
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432/"
                             "postgres; a throwaway database is created on it and dropped")
    parser.add_argument("--max-seconds", type=float, default=max_seconds,
                        help="give up (non-zero exit) if the run has not finished by then")
    if child:
        parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)


# -- database -------------------------------------------------------------------------
@contextlib.contextmanager
def throwaway_database(server_url: str | None) -> Iterator[str | None]:
    """With a PostgreSQL URL: a database of this run's own, dropped at the end; else None.

    `server_url` is any database on the server we may connect to to run CREATE DATABASE,
    e.g. postgresql://postgres@127.0.0.1:5432/postgres.
    """
    if not server_url:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be a postgresql:// URL (SQLite is the default)")
    url = url.set(drivername="postgresql+psycopg")
    name = f"mailhaven_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_settings(data_dir: Path, database_url: str | None, **changes: object) -> Settings:
    settings = Settings(data_dir=data_dir, database_url=database_url or "", hostname=HOSTNAME)
    return settings.with_(**changes) if changes else settings


def backend_name(database_url: str | None) -> str:
    return "postgresql" if database_url else "sqlite"


def seed(settings: Settings, domain_name: str = DOMAIN) -> tuple[str, str]:
    """Migrate, then create an account and its domain through the services; (account, key)."""
    from mailhaven.accounts.service import create_account
    from mailhaven.domains.service import create_domain
    from mailhaven.services import Services

    services = Services.start(settings)
    try:
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name="Bench", email="ops@bench.test",
                                    clock=services.clock)
            domain = create_domain(session, services.vault, issued.account_id,
                                   {"name": domain_name}, services.clock)
            domain.state = "active"  # as if its DNS were verified: benches have no DNS
            # ...and checked just now, so that `serve`'s domain checker leaves it alone
            domain.dns_checked_at = services.clock.now()
    finally:
        services.close()
    return issued.account_id, issued.api_key


def backends_cpu(engine: Any) -> dict[int, float]:
    """CPU of each PostgreSQL backend connected to this run's database (the server's),
    read from /proc: the server runs on this machine. {} on SQLite."""
    if engine.dialect.name != "postgresql":
        return {}
    from sqlalchemy import text

    with engine.connect() as conn:
        pids = conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars().all()
    return {pid: process_cpu_seconds(pid) for pid in pids}


def backends_cpu_since(engine: Any, before: dict[int, float]) -> float:
    """CPU the backends have used since `before` (`backends_cpu`), new ones included."""
    return sum(v - before.get(pid, 0.0) for pid, v in backends_cpu(engine).items())


# -- the message every benchmark sends -------------------------------------------------
def send_fields(i: int) -> list[tuple[str, str]]:
    """The form of one `POST /messages`, shaped like a transactional send (~1 KB of text)."""
    return [
        ("from", f"Bench Shop <orders@{DOMAIN}>"),
        ("to", f"Customer {i} <customer{i}@example.com>"),
        ("subject", f"Your order #{i} has shipped"),
        ("text", TEXT.format(i=i)),
        ("o:tag", "shipping"),
        ("o:tag", "transactional"),
        ("v:order-id", str(i)),
        ("v:campaign", "bench"),
    ]


def send_body(i: int) -> bytes:
    return urlencode(send_fields(i)).encode()


ATTACHMENT_BYTES = 10 * 1024


def attachment(i: int) -> bytes:
    """10 KB that does not compress (as a PDF or an image would not), different per message."""
    return random.Random(i).randbytes(ATTACHMENT_BYTES)


def multipart_send(i: int) -> tuple[bytes, str]:
    """(body, content type) of one `POST /messages` as the SDKs send a file: multipart/form-data
    with the fields of `send_fields` and a 10 KB attachment. Encoded by httpx, as a client
    library would; built before anything is timed."""
    import httpx

    data: dict[str, list[str]] = {}
    for key, value in send_fields(i):
        data.setdefault(key, []).append(value)
    request = httpx.Request("POST", "http://bench.invalid/", data=data, files=[
        ("attachment", (f"invoice-{i}.pdf", attachment(i), "application/pdf"))])
    return request.read(), request.headers["content-type"]


# -- a lean HTTP/1.1 client --------------------------------------------------------------
IDLE_REUSE = 2.0  # seconds; uvicorn closes a keep-alive connection idle for 5


class RawConnection:
    """One keep-alive HTTP/1.1 connection that writes prepared requests and reads answers
    with a Content-Length: a few microseconds of CPU per request, so that on a small
    machine the load generator takes as little as possible from the server it measures.
    (httpx costs the client ~1 ms of CPU per request: at 64 clients the trivial reference
    endpoint would measure the client, not the server.)"""

    def __init__(self, port: int, authorization: str) -> None:
        self.port = port
        self.head = (f"Host: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n"
                     f"User-Agent: mailhaven-bench\r\n")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0  # time.monotonic() of the last request

    def prepare(self, method: str, path: str, body: bytes = b"",
                content_type: str | None = None) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\n{self.head}"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        if body or method != "GET":
            head += f"Content-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    async def request(self, prepared: bytes) -> tuple[int, bytes]:
        """(status, body) of one prepared request."""
        if self.writer is not None and time.monotonic() - self.used > IDLE_REUSE:
            await self.close()  # the server may be closing it right now: don't race it
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.used = time.monotonic()
        assert self.reader is not None
        self.writer.write(prepared)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


def basic_auth(api_key: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()


# -- statistics -----------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    fmt: str


def table(columns: Sequence[Column], rows: Sequence[Sequence[object]]) -> str:
    head = "  ".join(c.title.rjust(c.width) for c in columns)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for c, value in zip(columns, row, strict=True):
            text = value if isinstance(value, str) else format(value, c.fmt)
            cells.append(text.rjust(c.width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


# -- rounds of phases ---------------------------------------------------------------------
def run_rounds(bench: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """An untimed warm-up of every phase, then `args.rounds` rounds of `args.phases`, each
    round in the other order than the last (what runs first pays for a cold machine);
    `bench.run(name, count)` runs one phase and returns it (with its `rate`)."""
    if args.warmup:
        for name in args.phases:
            bench.run(name, args.warmup)
    rounds = []
    for number in range(args.rounds):
        order = args.phases if number % 2 == 0 else tuple(reversed(args.phases))
        phases = {name: bench.run(name, args.messages) for name in order}
        rounds.append(phases)
        rates = "  ".join(f"{name} {phases[name].rate:.0f}/s" for name in args.phases)
        print(f"  round {number + 1}: {rates}", flush=True)
    return rounds


def ratio(rounds: list[dict[str, Any]], name: str, reference: str) -> float:
    """The median over rounds of a phase's rate against its reference's (nan if either
    did not run)."""
    if reference not in rounds[0] or name not in rounds[0]:
        return float("nan")
    return median([r[name].rate / r[reference].rate for r in rounds])


def run_script(main: Callable[[], None]) -> None:
    """A benchmark's `main`; --max-seconds reached is a short message and a non-zero exit."""
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None


# -- results for `make bench` ---------------------------------------------------------
RESULTS_ENV = "MAILHAVEN_BENCH_RESULTS"  # a directory: bench/run.py sets it, collects, writes


@dataclass(frozen=True)
class Figure:
    """One line of the table in docs/BENCHMARKS.md: a measured figure, its reference measured
    in the same run, and the issue's goal for it."""

    figure: str  # what is measured, e.g. "accepted/s, 64 clients"
    value: float
    unit: str  # e.g. "msg/s", "ms p95"
    reference: str = ""  # what the ratio divides by, e.g. "trivial authenticated endpoint"
    reference_value: float | None = None
    ratio: float | None = None
    goal: str = ""  # e.g. ">= 0.5", "< 100 ms"
    met: bool | None = None  # None: a figure to report, not a goal


def record(script: str, backend: str, figures: Sequence[Figure], summary: str) -> None:
    """Keep this run's figures (and its printed summary) for bench/run.py, when it runs us;
    run by hand, a script only prints."""
    directory = os.environ.get(RESULTS_ENV)
    if not directory:
        return
    path = Path(directory) / f"{script}-{backend}.json"
    path.write_text(json.dumps({"script": script, "backend": backend,
                                "command": " ".join(["python", *sys.argv]),
                                "figures": [asdict(f) for f in figures],
                                "summary": summary}, indent=2))


# -- the SMTP sink (child process) ------------------------------------------------------
class _Accept:
    """aiosmtpd handler: every recipient and every message accepted, nothing kept."""

    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, _server: object, _session: object, _envelope: object) -> str:
        self.messages += 1
        return "250 2.0.0 OK queued"


async def _run_sink(port: int) -> int:
    from aiosmtpd.smtp import SMTP

    handler = _Accept()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.bench.test", data_size_limit=50 * 1024 * 1024),
        host="127.0.0.1", port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    return handler.messages


def start_sink(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "sink", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    wait_for_port(port, 30, proc)
    return proc


def stop_sink(proc: subprocess.Popen) -> int:
    """Stop the sink and return how many messages it accepted (-1 if it did not say)."""
    stop_child(proc)
    out = proc.stdout.read() if proc.stdout else ""
    for line in out.splitlines():
        if line.startswith("received "):
            return int(line.split()[1])
    return -1


def main() -> None:
    import logging

    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    sink = sub.add_parser("sink", help="an SMTP server on 127.0.0.1 that accepts everything")
    sink.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    received = asyncio.run(_run_sink(args.port))
    print(f"received {received}", flush=True)


if __name__ == "__main__":
    main()
