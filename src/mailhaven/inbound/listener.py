"""The MX: receives mail for every domain an account owns, and the bounces and complaints
sent to our VERP return paths (`bounce+<id>-<mac>@…`, handled as `feedback.listener` always
has). Anything else is refused at RCPT: never an open relay.

A message is authenticated (SPF, DKIM, DMARC, in a thread and bounded in time), sealed and
queued for each receiving domain, and answered 250 only once that is committed: a crash
after the 250 loses nothing, the processor (`inbound.processor`) takes it from the queue.
STARTTLS is offered (the submission server's certificate); AUTH is not: this is no
submission port.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AnyStr, Protocol

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException
from prometheus_client import Counter

from mailhaven.addresses import MAX_RECIPIENTS, valid_addresses
from mailhaven.clock import monotonic
from mailhaven.delivery.signing import delivery_of
from mailhaven.errors import frames
from mailhaven.inbound.auth import Verdicts, authenticate, disarm, trace_headers
from mailhaven.inbound.service import (
    Head,
    Received,
    Receiver,
    Receivers,
    group_commit,
    header_section,
)
from mailhaven.regions.service import for_domain
from mailhaven.runner import Doorbell
from mailhaven.services import Services
from mailhaven.storage.base import new_id
from mailhaven.storage.db import is_out_of_space, outage
from mailhaven.submission.limits import Door, ErrorBudget, LimitedSMTP, Sessions
from mailhaven.submission.tls import server_context

log = logging.getLogger("mailhaven.inbound")
IDENT = "Mailhaven ESMTP"  # the banner names us, not the SMTP library and its version
MAX_REPORT_BYTES = 10 * 1024 * 1024  # a DSN or ARF report: as the return-path listener took
AUTH_SECONDS = 20.0  # SPF, DKIM and DMARC of one message together; then temperror
AUTH_THREADS = 16  # messages authenticated at once, in threads of their own
MAX_HOPS = 50  # Received fields a message may carry: more is a loop (Postfix's hopcount_limit)
MAX_HEADER_BYTES = 1024 * 1024  # the header section: parsed in Python, slow when huge

RECEIVED = Counter("mailhaven_mx_messages_accepted_total", "Messages accepted at the MX")
REFUSED = Counter("mailhaven_mx_refused_total", "MX commands refused", ["reason"])
# Authentication waits on DNS: threads of its own, so that slow lookups never hold the
# default executor's (RCPT's domain lookups, the runners). Started when first used.
CHECKS = ThreadPoolExecutor(AUTH_THREADS, thread_name_prefix="mx-auth")

RELAYING_DENIED = "550 5.7.1 Relaying denied"
BAD_RECIPIENT = "553 5.1.3 The recipient is not a valid address"
NO_SUCH_RETURN_PATH = "550 5.1.1 No such recipient here"
TOO_MANY_RECIPIENTS = f"452 4.5.3 Too many recipients: at most {MAX_RECIPIENTS} per message"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please try again later"
OUT_OF_SPACE = "452 4.3.1 Insufficient system storage, please try again later"  # RFC 3463
# RFC 5321 4.5.3.1.10: a 452 at RCPT has the client send to that recipient in a later
# transaction; a report and received mail answered apart (each its own reply) stay apart
ANOTHER_TRANSACTION = "452 4.5.3 Please send to this recipient in another transaction"
TOO_MANY_HOPS = "554 5.4.6 Too many hops: a mail loop"
NO_AUTH = "502 5.5.1 AUTH is not offered here: this is a mail exchanger, not a submission port"
HEADER_TOO_LARGE = (f"552 5.3.4 Message header exceeds fixed maximum header size "
                    f"({MAX_HEADER_BYTES} bytes): message refused")


def too_large(limit: int) -> str:
    return (f"552 5.3.4 Message size exceeds fixed maximum message size ({limit} bytes): "
            "message refused")


class ReturnPaths(Protocol):
    """What takes the DSNs and ARF reports sent to our VERP return paths: the feedback
    package's handler, given by the process's wiring (`server`), so that this package and
    feedback don't import each other's neighbours in a circle."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str: ...


class InboundEnvelope(Envelope):
    """aiosmtpd's envelope, with where each accepted recipient goes."""

    def __init__(self) -> None:
        super().__init__()
        self.receivers: dict[str, Receiver] = {}  # address -> the domain that receives it
        self.regions: dict[str, MXRegion] = {}  # address -> the region it is stored in
        self.feedback: MXRegion | None = None  # the region whose VERP addresses these are
        self.return_paths: list[str] = []  # VERP addresses: bounces and complaints


class InboundSMTP(LimitedSMTP):
    """aiosmtpd's protocol with our wording of its own refusals, no AUTH, and the limits
    of both SMTP doors (`submission.limits`): sessions open at once, in all and per client
    network (an IPv4 address, an IPv6 /64; over them: 421 at connect, and closed),
    errors — a flood of unknown recipients among them — and silence."""

    door = "mx"

    def __init__(self, handler: InboundHandler, **kwargs: Any) -> None:
        settings = handler.services.settings
        super().__init__(handler, sessions=handler.sessions, errors=ErrorBudget(
            settings.smtp_soft_error_limit, settings.smtp_hard_error_limit,
            settings.smtp_error_delay_seconds), **kwargs)
        self.limit = handler.limit

    def _create_envelope(self) -> Envelope:
        return InboundEnvelope()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith("552 Error"):
            REFUSED.labels("size").inc()
            status = too_large(self.limit)
        await super().push(status)

    async def smtp_AUTH(self, arg: str) -> None:  # noqa: ARG002 (aiosmtpd's signature)
        await self.push(NO_AUTH)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, but the message is gathered in one buffer: aiosmtpd keeps each
        line as an object of its own (about 34 bytes held per byte of empty lines: 25 MB
        of them took 840 MB). Same replies: too long a line 500, too much data 552 (read
        and discarded to the end), else the handler's."""
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = bytearray()
        problem = ""
        fragment = False  # the line under way came in pieces (over the stream's limit)
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                self._writer.close()  # the connection was lost during DATA
                raise
            except asyncio.LimitOverrunError as overrun:
                problem = problem or "500 Line too long (see RFC5321 4.5.3.1.6)"
                data.clear()
                await self._reader.read(overrun.consumed)  # discarded
                fragment = True
                continue
            if fragment:  # the end of an overlong line
                fragment = False
                continue
            if line == b".\r\n":
                break
            if problem:
                continue
            if len(line) > self.line_length_limit:
                problem = "500 Line too long (see RFC5321 4.5.3.1.6)"
            elif self.limit and len(data) + len(line) > self.limit:
                problem = "552 Error: Too much mail data"
            if problem:
                data.clear()
                continue
            data += line[1:] if line.startswith(b".") else line  # RFC 5321 4.5.2
        if problem:
            await self.push(problem)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        original = bytes(data)
        data.clear()
        self.envelope.content = self.envelope.original_content = original
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)


class MXRegion:
    """One region's side of the MX: its domains, its inbound queue, its return paths."""

    def __init__(self, services: Services, *, bell: Doorbell | None = None,
                 return_paths: ReturnPaths | None = None) -> None:
        self.services = services
        self.receivers = Receivers(
            services.db, require_verified=services.settings.require_verified_domains)
        self.writes = group_commit(services.db, services.vault, services.clock)
        self.bell = bell
        self.feedback = return_paths


class InboundHandler:
    """What the MX answers: aiosmtpd speaks SMTP, this decides. With `regions` (a platform
    split into regions, SPEC N11), each recipient's domain names the region its copy is
    stored in, and a VERP address the region whose vault signed it."""

    def __init__(self, services: Services, *, return_paths: ReturnPaths | None = None,
                 bell: Doorbell | None = None, regions: list[MXRegion] | None = None) -> None:
        self.services = services
        self.limit = services.settings.inbound_max_bytes
        self.sessions = Sessions(services.settings.mx_max_sessions,
                                 services.settings.mx_max_sessions_per_ip)
        self.regions = regions or [MXRegion(services, bell=bell, return_paths=return_paths)]
        self.platform = services.platform if regions else None

    def _return_path_region(self, address: str) -> MXRegion | None:
        for region in self.regions:
            if region.feedback is not None and \
                    delivery_of(region.services.vault, address) is not None:
                return region
        return None

    def _receiving_region(self, domain: str) -> MXRegion | None:
        """Blocking. The region holding `domain` (by the directory), or the only one."""
        if self.platform is None:
            return self.regions[0]
        found = for_domain(self.platform, domain)
        if found is None:
            return None
        return next((r for r in self.regions if r.services.region == found.region), None)

    async def handle_EHLO(self, _server: SMTP, session: Session, _envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses if not r.startswith("250-AUTH")]
        return [*kept[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", kept[-1]]

    async def handle_RCPT(self, _server: SMTP, _session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(envelope, InboundEnvelope)
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return _refused(TOO_MANY_RECIPIENTS, "recipients")
        if (feedback := self._return_path_region(address)) is not None:
            if envelope.receivers or envelope.feedback not in (None, feedback):
                return _refused(ANOTHER_TRANSACTION, "mixed")
            envelope.feedback = feedback
            envelope.return_paths.append(address)
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        if address.lower().startswith("bounce+") and "@" in address:
            return _refused(NO_SUCH_RETURN_PATH, "return-path")  # forged or unknown
        if not valid_addresses([address]):
            return _refused(BAD_RECIPIENT, "recipient")
        domain = address.rpartition("@")[2]
        region = self.regions[0] if self.platform is None \
            else await asyncio.to_thread(self._receiving_region, domain)
        found = None if region is None else await asyncio.to_thread(region.receivers.of, domain)
        if region is None or found is None:
            return _refused(RELAYING_DENIED, "relaying")
        if envelope.return_paths:
            return _refused(ANOTHER_TRANSACTION, "mixed")
        if address.lower() not in {a.lower() for a in envelope.receivers}:
            envelope.receivers[address] = found
            envelope.regions[address] = region
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, InboundEnvelope)
        started = monotonic()
        raw = envelope.original_content or b""
        header = header_section(raw, MAX_HEADER_BYTES)
        if header is None:
            return _refused(HEADER_TOO_LARGE, "header")
        if envelope.return_paths and envelope.feedback is not None:  # then no received mail
            if len(raw) > MAX_REPORT_BYTES:
                return _refused(too_large(MAX_REPORT_BYTES), "size")
            reports = Envelope()
            reports.mail_from, reports.rcpt_tos = envelope.mail_from, envelope.return_paths
            reports.original_content = raw
            assert envelope.feedback.feedback is not None
            return await envelope.feedback.feedback.handle_DATA(server, session, reports)
        # read once, off the event loop; authenticated as it came, stored disarmed
        head, disarmed = await asyncio.to_thread(
            _intake_header, header, self.services.settings.hostname)
        if head.hops > MAX_HOPS:
            return _refused(TOO_MANY_HOPS, "hops")
        verdicts = await self._authenticate(session, envelope, raw, head)
        try:
            keys = await self._store(session, envelope, disarmed + raw[len(header):], head,
                                     verdicts)
        except Exception as exc:  # ours to log, never the sender's to read
            if not outage.refused("mx", exc):
                log.error("mx: storing failed: %s", frames(exc))
            REFUSED.labels("error").inc()
            return OUT_OF_SPACE if is_out_of_space(exc) else TEMPORARY_FAILURE
        outage.answered()
        RECEIVED.inc()
        log.info(json.dumps({
            "kind": "mx", "status": 250, "recipients": len(envelope.receivers),
            "messages": len(keys), "bytes": len(raw), "tls": session.ssl is not None,
            "spf": verdicts.spf, "dkim": verdicts.dkim, "dmarc": verdicts.dmarc,
            "ms": round((monotonic() - started) * 1000, 2)}))
        return f"250 2.0.0 OK: queued as {keys[0]}"

    async def _authenticate(self, session: Session, envelope: InboundEnvelope,
                            raw: bytes, head: Head) -> Verdicts:
        # The lookups end by the deadline (and so does the thread, but for an RSA check
        # under way); the timeout is the backstop. A check queued past its deadline is quick.
        check = functools.partial(
            authenticate, raw, ip=_peer_ip(session), helo=session.host_name or "",
            mail_from=envelope.mail_from or "", from_header=head.from_,
            nameserver=self.services.settings.dns_nameserver,
            deadline=monotonic() + AUTH_SECONDS)
        try:
            async with asyncio.timeout(AUTH_SECONDS + 1):
                return await asyncio.get_running_loop().run_in_executor(CHECKS, check)
        except TimeoutError:
            return Verdicts("temperror", "", "temperror", (), "temperror")
        except Exception as exc:  # a check that broke is no reason to refuse the mail
            log.error("mx: authentication failed: %s", frames(exc))
            return Verdicts("temperror", "", "temperror", (), "temperror")

    async def _store(self, session: Session, envelope: InboundEnvelope, raw: bytes,
                     head: Head, verdicts: Verdicts) -> list[str]:
        """One copy per receiving domain, each in its region's inbound queue (only that
        region's recipients named in it)."""
        by_domain: dict[str, list[str]] = {}
        receivers: dict[str, Receiver] = {}
        regions: dict[str, MXRegion] = {}
        for address, found in envelope.receivers.items():
            by_domain.setdefault(found.domain_id, []).append(address)
            receivers[found.domain_id] = found
            regions[found.domain_id] = envelope.regions[address]
        now = self.services.clock.now()
        settings = self.services.settings
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""
        received: dict[int, list[Received]] = {}
        for domain_id, recipients in by_domain.items():
            trace = trace_headers(verdicts, hostname=settings.hostname,
                                  helo=session.host_name or "", ip=_peer_ip(session),
                                  tls=session.ssl is not None, mail_from=mail_from,
                                  recipients=recipients, queue_id=new_id()[:12], now=now)
            received.setdefault(id(regions[domain_id]), []).append(Received(
                receivers[domain_id], recipients, mail_from, trace + raw, head, verdicts))
        keys: list[str] = []
        for region in self.regions:
            if id(region) in received:
                keys += await region.writes.submit(received[id(region)])
                if region.bell is not None:
                    region.bell.ring()
        return keys

    async def handle_exception(self, error: Exception) -> str:
        """Whatever went wrong is ours to log, never the sender's to read (aiosmtpd would
        answer with the exception's text). A STARTTLS handshake the client gave up is the
        client's affair."""
        if isinstance(error, TLSSetupException):
            log.info(json.dumps({"kind": "mx", "state": "TLS handshake failed"}))
        elif not outage.refused("mx", error):
            log.error("mx: %s", frames(error))
        return TEMPORARY_FAILURE


def _intake_header(header: bytes, hostname: str) -> tuple[Head, bytes]:
    return Head.of(header), disarm(header, hostname)


def _refused(reply: str, reason: str) -> str:
    REFUSED.labels(reason).inc()
    return reply


def _peer_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else "127.0.0.1"


async def start_mx(services: Services, host: str, port: int, *,
                   return_paths: ReturnPaths | None = None, sock: socket.socket | None = None,
                   bell: Doorbell | None = None,
                   regions: list[MXRegion] | None = None) -> Door:
    """Serve the MX on host:port (or on a bound `sock`); the caller closes it (its open
    sessions with it).
    `return_paths` takes the reports sent to VERP addresses (without it they are refused);
    `bell` is rung when a message is queued (the processor of this process wakes);
    `regions`, when the platform is split, each region's side (they replace those two)."""
    settings = services.settings
    context: ssl.SSLContext = await asyncio.to_thread(server_context, settings)
    handler = InboundHandler(services, return_paths=return_paths, bell=bell, regions=regions)
    loop = asyncio.get_running_loop()

    def protocol() -> InboundSMTP:
        return InboundSMTP(handler, hostname=settings.hostname, ident=IDENT, loop=loop,
                           data_size_limit=handler.limit, enable_SMTPUTF8=True,
                           tls_context=context, require_starttls=False,
                           auth_require_tls=True, timeout=settings.smtp_idle_seconds)

    if sock is not None:
        server = await loop.create_server(protocol, sock=sock)
    else:
        server = await loop.create_server(protocol, host, port)
    return Door([server], handler.sessions)
