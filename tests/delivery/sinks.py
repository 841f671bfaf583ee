"""Helpers for delivery tests: sinks that count connections, self-signed TLS, a tiny
authoritative DNS server on loopback, and readers for what a user would look at."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from mailhaven.delivery.models import Delivery
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.services import Services
from tests.support import Sink, SinkBehaviour, _Handler, with_relay


# -- sinks ------------------------------------------------------------------------------
class _CountingHandler(_Handler):
    """Counts SMTP connections (one aiosmtpd `SMTP` instance each) that began a transaction;
    can drop a connection at its second MAIL, as a server that timed out an idle one does."""

    sink: CountingSink

    async def handle_MAIL(self, server: SMTP, _session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        sink = self.sink
        seen = any(s is server for s in sink.connections)
        if not seen:
            sink.connections.append(server)
        elif sink.drop_reused > 0:
            sink.drop_reused -= 1
            assert server.transport is not None
            server.transport.abort()
            return "421 4.4.2 idle too long"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"


class _CountedSession(SMTP):
    """An SMTP session that keeps its sink's count of sessions open at once."""

    def __init__(self, sink: CountingSink, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sink.open_sessions += 1
        self.sink.most_sessions = max(self.sink.most_sessions, self.sink.open_sessions)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.sink.open_sessions -= 1


class CountingSink(Sink):
    """Counts the connections that sent mail, and the most sessions open at once (idle ones
    included, and the controller's own probe when it starts)."""

    def __init__(self, behaviour: SinkBehaviour | None = None, *, drop_reused: int = 0,
                 **kwargs: object) -> None:
        super().__init__(behaviour, **kwargs)  # type: ignore[arg-type]
        self.connections: list[SMTP] = []
        self.drop_reused = drop_reused
        self.open_sessions = self.most_sessions = 0
        self.controller.handler = _CountingHandler(self)
        self.controller.factory = self._session  # type: ignore[method-assign]

    def _session(self) -> SMTP:
        return _CountedSession(self, self.controller.handler, **self.controller.SMTP_kwargs)


class _NotReallyTls(SMTP):
    """Says yes to STARTTLS, then answers the client's TLS hello in plaintext: the client's
    own TLS layer fails, as with a broken or ancient server TLS setup."""

    async def smtp_STARTTLS(self, _arg: str) -> None:
        await self.push("220 2.0.0 Ready to start TLS")
        await self._reader.read(1)  # the client hello has begun
        assert self.transport is not None
        self.transport.write(b"220 this is not TLS\r\n")


class _NotReallyTlsController(Controller):
    def factory(self) -> SMTP:
        return _NotReallyTls(self.handler, **self.SMTP_kwargs)


class BrokenTlsSink(Sink):
    """Offers STARTTLS, but the handshake always fails on the client's side."""

    def __init__(self, tls_context: ssl.SSLContext,
                 behaviour: SinkBehaviour | None = None) -> None:
        super().__init__(behaviour)
        self.controller.loop.close()  # the plain controller is replaced before it ran
        self.controller = _NotReallyTlsController(
            _Handler(self), hostname="127.0.0.1", port=self.port,
            server_hostname="mx.sink.test", tls_context=tls_context)


def without_smtputf8(sink: Sink) -> Sink:
    """The sink, as a server that does not offer SMTPUTF8 (call before starting it)."""
    sink.controller.SMTP_kwargs["enable_SMTPUTF8"] = False
    return sink


def refuse_first(times: int, reply: str) -> Callable[[object], str | None]:
    """A SinkBehaviour callable answering `reply` the first `times` calls, then accepting."""
    left = [times]

    def answer(_: object) -> str | None:
        if left[0] > 0:
            left[0] -= 1
            return reply
        return None
    return answer


def self_signed_tls(directory: Path, name: str = "mx.sink.test") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for `name` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "sink-cert.pem", directory / "sink-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


# -- DNS --------------------------------------------------------------------------------
def _absolute(name: str) -> str:
    return name.lower().rstrip(".") + "."


class DnsServer:
    """An authoritative UDP name server on loopback answering from a dict:
    {"example.test": {"MX": ["10 mx1.example.test."]}, "mx1.example.test": {"A": [...]}}.
    A name absent from the zone is NXDOMAIN; a present name without the type is NOERROR
    with an empty answer; names in `servfail` get SERVFAIL."""

    def __init__(self, zone: dict[str, dict[str, list[str]]], *,
                 servfail: tuple[str, ...] = ()) -> None:
        self.zone = {_absolute(n): {t.upper(): v for t, v in types.items()}
                     for n, types in zone.items()}
        self.servfail = {_absolute(n) for n in servfail}
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name.rstrip("."), rdtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.zone[name].get(rdtype):
            response.answer.append(
                dns.rrset.from_text(question.name, 300, "IN", rdtype, *self.zone[name][rdtype]))
        return response.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            self._sock.sendto(self._answer(wire), peer)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def with_dns(services: Services, dns_server: DnsServer, smtp_port: int) -> Services:
    """Services that route by MX through `dns_server` and deliver to `smtp_port`."""
    settings = services.settings.with_(relayhost=None, dns_nameserver=dns_server.address,
                                       smtp_delivery_port=smtp_port)
    return dataclasses.replace(services, settings=settings)


# -- running the worker -----------------------------------------------------------------
def deliver_in_rounds(services: Services, sink: Sink, *between: Callable[[], None]) -> None:
    """One worker (one connection pool) draining the queue, then running each callable in
    turn and draining again: lets a test queue mail while connections sit idle in the pool."""
    run_worker(with_relay(services, sink), *between)


def run_worker(services: Services, *between: Callable[[], None],
               concurrency: int = 20) -> DeliveryWorker:
    """`deliver_in_rounds` with any routing; returns the stopped worker, to look at what it
    learnt (its shaper)."""
    worker = DeliveryWorker(services, concurrency=concurrency)

    async def run() -> None:
        try:
            await worker.drain()
            for step in between:
                await asyncio.to_thread(step)
                await worker.drain()
        finally:
            await worker.close()

    asyncio.run(run())
    return worker


# -- what a user would read -------------------------------------------------------------
def send(api, domain: str, fields: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    """POST /v3/{domain}/messages (Ann at example.org by default, `fields` override);
    returns the message id without <>."""
    data = {"from": f"Acme <news@{domain}>", "to": "Ann <ann@example.org>",
            "subject": "Hello", "text": "Hi Ann", **(fields or {})}
    reply = api.post(f"/v3/{domain}/messages", data=data)
    assert reply.status_code == 200, reply.text
    return reply.json()["id"].strip("<>")


def events(api, domain: str, event: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    params = {"ascending": "yes", "limit": "300"}
    if event is not None:
        params["event"] = event
    reply = api.get(f"/v3/{domain}/events", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def outcomes(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """The delivered and failed events, oldest first."""
    return [e for e in events(api, domain) if e["event"] in ("delivered", "failed")]


def queue_rows(services: Services) -> list[Delivery]:
    with services.db.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))
