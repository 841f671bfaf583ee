"""Test helpers: a live HTTP server, SMTP sinks that play the recipient's MX, a worker run,
a second tenant, and the raw-database dump that plaintext scans read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import LargeBinary, Text, cast, select

from mailhaven.accounts.service import create_account
from mailhaven.app import create_app
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.domains.service import create_domain
from mailhaven.models import metadata
from mailhaven.services import Services

T = TypeVar("T")

# The TLS context every test client shares: httpx would load the CA bundle for each client
# (tens of ms; ~2000 tests make one), though they speak plain HTTP to loopback.
CLIENT_TLS = httpx.create_ssl_context()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The real app (or any ASGI app: a platform's dispatcher) on uvicorn in a thread, with
    an httpx client pointed at it."""

    def __init__(self, services: Services | None = None, *, dev: bool = False,
                 app: Any = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        served = app if app is not None else create_app(services, dev=dev)
        config = uvicorn.Config(served, host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, api_key: str | None = None) -> httpx.Client:
        auth = ("api", api_key) if api_key else None
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=60, verify=CLIENT_TLS)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self):  # type: ignore[no-untyped-def]
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class SinkBehaviour:
    """How the sink answers. Each callable gets the recipient (or None) and may return a
    reply string such as "450 4.2.0 Mailbox busy" to refuse; None accepts."""

    rcpt: Callable[[str], str | None] = lambda _rcpt: None
    data: Callable[[list[str]], str | None] = lambda _rcpts: None
    drop_during_data: int = 0  # close the connection instead of answering DATA, N times


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_RCPT(self, _server: SMTP, _session: Session, envelope: Envelope,
                          address: str, _rcpt_options: list[str]) -> str:
        self.sink.rcpt_attempts.append(address)
        refusal = self.sink.behaviour.rcpt(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, _session: Session, envelope: Envelope) -> str:
        sink = self.sink
        if sink.behaviour.drop_during_data > 0:
            sink.behaviour.drop_during_data -= 1
            sink.dropped += 1
            assert server.transport is not None
            server.transport.abort()  # the client never sees a reply to its message
            return "421 4.4.2 dropped"
        refusal = sink.behaviour.data(list(envelope.rcpt_tos))
        if refusal:
            return refusal
        sink.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      envelope.original_content or b""))
        return "250 2.0.0 OK queued"


class Sink:
    """An aiosmtpd server on loopback playing the recipient's mail server."""

    def __init__(self, behaviour: SinkBehaviour | None = None, *, tls_context=None,  # type: ignore[no-untyped-def]
                 require_starttls: bool = False) -> None:
        self.behaviour = behaviour or SinkBehaviour()
        self.received: list[Received] = []
        self.rcpt_attempts: list[str] = []
        self.dropped = 0
        self.port = free_port()
        kwargs = {}
        if tls_context is not None:
            kwargs = {"tls_context": tls_context, "require_starttls": require_starttls}
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     server_hostname="mx.sink.test", **kwargs)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass(frozen=True)
class Tenant:
    """An account with its own API key and sending domain."""

    account_id: str
    api_key: str
    domain: str


def create_tenant(services: Services, name: str = "Bee", domain: str = "mg.bee.test",
                  ) -> Tenant:
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name=name,
                                email=f"ops@{domain.split('.', 1)[-1]}", clock=services.clock)
        create_domain(session, services.vault, issued.account_id,  # 1024: as `domain`
                      {"name": domain, "dkim_key_size": "1024"}, services.clock)
    return Tenant(issued.account_id, issued.api_key, domain)


def another_tenant(services: Services, live: LiveServer, domain: str = "mg.bee.test",
                   ) -> httpx.Client:
    """Account B, with its own sending domain, and an API client for it."""
    return live.client(create_tenant(services, domain=domain).api_key)


def with_relay(services: Services, sink: Sink) -> Services:
    return dataclasses.replace(services, settings=services.settings.with_(relayhost=sink.address))


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on a thread of its own when this one runs a loop already (Playwright's
    sync API keeps one running while a browser test is open)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def deliver_due(services: Services, sink: Sink | None = None) -> None:
    """Run one worker until nothing is due now (what `mailhaven worker` does forever)."""
    if sink is not None:
        services = with_relay(services, sink)

    async def run() -> None:
        worker = DeliveryWorker(services, concurrency=20)
        try:
            await worker.drain()
        finally:
            await worker.close()

    run_loop(run())


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Listener(ThreadingHTTPServer):
    """An HTTP server on loopback whose backlog takes a webhook sender's burst of
    connections (the default of 5 resets some of them)."""

    request_queue_size = 128


class WebhookReceiver:
    """A customer's webhook endpoint on loopback: records every POST and answers with the
    status `reply(n)` gives for the n-th request (200 unless told otherwise)."""

    def __init__(self, reply: Callable[[int], int] = lambda _n: 200) -> None:
        self.reply = reply
        self.received: list[Hook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Hook(self.path, dict(self.headers), body))
                status = receiver.reply(len(receiver.received))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = Listener(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def send_webhooks(services: Services, transport: httpx.AsyncBaseTransport | None = None,
                  *, claims: int | None = None, **options: Any) -> int:
    """Run one webhook sender until nothing is due now (or for `claims` claims); how many
    POSTs it made. `options` go to the sender (concurrency, timeout)."""
    from mailhaven.webhooks.sender import WebhookSender

    async def run() -> int:
        sender = WebhookSender(services, transport=transport, **options)
        total, rounds = 0, 0
        try:
            while (claims is None or rounds < claims) and (handled := await sender.run_once()):
                total += handled
                rounds += 1
        finally:
            await sender.close()
        return total

    return run_loop(run())


# -- the raw-database dump ---------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseDump:
    """Everything the database holds: each column's values as stored (text columns as their
    text, binary ones as their bytes), and on SQLite the files themselves, WAL included."""

    columns: dict[str, list[bytes]]  # "table.column" -> one value per row (NULLs left out)
    files: dict[str, bytes]  # file name -> bytes (SQLite: the database, -wal, -shm)

    def everything(self) -> bytes:
        """All of it as one run of bytes, for a search that needn't say where."""
        return b"\n".join([*(v for values in self.columns.values() for v in values),
                            *self.files.values()])

    def holding(self, needle: bytes) -> list[str]:
        """Where `needle` occurs: the "table.column" names and file names."""
        return [*(name for name, values in self.columns.items()
                  if any(needle in value for value in values)),
                *(name for name, data in self.files.items() if needle in data)]


def dump_database(services: Services) -> DatabaseDump:
    """Every row of every table, read through SQL (non-binary columns cast to text), and on
    SQLite the raw files read while the database is open, so the WAL is still there."""
    columns: dict[str, list[bytes]] = {}
    with services.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            selected = [c if isinstance(c.type, LargeBinary) else cast(c, Text)
                        for c in table.columns]
            rows = conn.execute(select(*selected)).all()
            for i, col in enumerate(table.columns):
                columns[f"{table.name}.{col.name}"] = [
                    bytes(row[i]) if isinstance(row[i], bytes | memoryview)
                    else str(row[i]).encode() for row in rows if row[i] is not None]
    files = {}
    if services.db.is_sqlite:
        database = Path(services.db.engine.url.database or "")
        files = {p.name: p.read_bytes()
                 for p in sorted(database.parent.glob(database.name + "*")) if p.is_file()}
    return DatabaseDump(columns, files)
