"""The SMTP submission server: authenticated clients hand in messages that go into the same
pipeline as `POST /v3/{domain}/messages.mime` — one transaction accepts, queues and records
`accepted`, and only then is the message answered 250.

Two listeners share one handler: STARTTLS on MAILHAVEN_SMTP_PORT (the port-587 service)
and implicit TLS on MAILHAVEN_SMTPS_PORT (the port-465 service). AUTH is offered and taken
only under TLS; aiosmtpd knows TLS only when it did the STARTTLS itself (aio-libs/aiosmtpd
#281), so the implicit-TLS listener turns its `auth_require_tls` off — its every byte is
under TLS already.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
from dataclasses import dataclass, field, replace
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session, TLSSetupException
from prometheus_client import Counter

from mailhaven.addresses import MAX_RECIPIENTS, valid_addresses
from mailhaven.clock import monotonic
from mailhaven.credentials.service import Credential, canonical_login
from mailhaven.domains.service import owned_domain
from mailhaven.errors import MailhavenError, frames
from mailhaven.regions.service import for_domain
from mailhaven.sending import identity
from mailhaven.sending.request import MAX_MESSAGE_BYTES, Attachment
from mailhaven.sending.service import Accepted, SendAttempt, group_commit
from mailhaven.services import Services
from mailhaven.storage.db import is_out_of_space, outage
from mailhaven.storage.group_commit import GroupCommit
from mailhaven.submission.auth import (
    AUTH_FAILURES,
    BAD_CREDENTIALS,
    Login,
    Logins,
    still_current,
)
from mailhaven.submission.headers import Submitted, read_submission
from mailhaven.submission.limits import Closing, ErrorBudget, LimitedSMTP, Sessions
from mailhaven.submission.replies import Reply, builtin, one_line, refusal
from mailhaven.submission.tls import server_context
from mailhaven.submission.trusted import TrustedNetwork, TrustedNetworks

log = logging.getLogger("mailhaven.submission")
IDENT = "Mailhaven ESMTP"  # the banner names us, not the SMTP library and its version
STARTTLS, IMPLICIT_TLS = "starttls", "tls"

ACCEPTED = Counter("mailhaven_smtp_messages_accepted_total",
                   "Messages accepted by the SMTP submission server")
REFUSED = Counter("mailhaven_smtp_refused_total",
                  "SMTP submission commands refused", ["reason"])

NOT_AUTHENTICATED = Reply("530 5.7.0 Authentication required", "unauthenticated")
# RFC 4954 6: 530 for a command that needs authentication when none is in force — as none
# is once the login it proved is deleted or its password changed
REVOKED = Reply("530 5.7.0 Authentication required: the login was deleted or its password "
                "changed", "revoked")
TOO_MANY_RECIPIENTS = Reply(f"452 4.5.3 Too many recipients: at most {MAX_RECIPIENTS} per "
                            "message", "recipients")
BAD_RECIPIENT = Reply("553 5.1.3 The recipient is not a valid address", "recipient")
ENVELOPE_NOT_YOURS = ("The envelope sender's domain {} is not a domain of this account: "
                      "MAIL FROM must be an address in the organizational domain of {} or "
                      "of another domain of this account")
TEMPORARY_FAILURE = Reply("451 4.3.0 Temporary failure, please try again later", "error")
# RFC 3463's 4.3.1: the sender keeps the message and tries again, as after any 4xx
OUT_OF_SPACE = Reply("452 4.3.1 Insufficient system storage, please try again later",
                     "storage")
UNKNOWN_TRUSTED_DOMAIN = Reply("451 4.3.0 This network's domain is not set up here: the "
                               "operator must check MAILHAVEN_SMTP_TRUSTED_NETWORKS", "trusted")


class SubmissionSession(Session):
    """aiosmtpd's session, with what the session's log line tells."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.started = monotonic()
        self.messages = 0
        self.refused: dict[str, int] = {}
        self.trusted: TrustedNetwork | None = None  # a trusted network's client: no AUTH
        self.trusted_as: Credential | None = None  # ...and who it submits as, once asked

    @property
    def login_data(self) -> Any:
        return self._login_data  # without aiosmtpd's deprecation warning on every AUTH

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class SubmissionSMTP(LimitedSMTP):
    """aiosmtpd's protocol, with its own replies given enhanced status codes, the limits
    of both SMTP doors (`submission.limits`; the operator's trusted networks' sessions are
    not counted), and one log line when a session ends."""

    door = "submission"

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        settings = handler.submission.services.settings
        super().__init__(handler, sessions=handler.submission.sessions, errors=ErrorBudget(
            settings.smtp_soft_error_limit, settings.smtp_hard_error_limit,
            settings.smtp_error_delay_seconds), **kwargs)
        self.handler = handler
        self.listener = handler.listener

    def _create_session(self) -> Session:
        return SubmissionSession(self.loop)

    def exempt(self, ip: str) -> bool:
        return self.handler.submission.trusted.network_of(ip or None) is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._turned_away or self.session is None:  # refused, or implicit TLS's handshake
            return
        session = self.session
        peer = session.peer if session is not None else None
        trusted = self.handler.submission.trusted.network_of(
            peer[0] if isinstance(peer, tuple) else None)
        if trusted is not None and isinstance(session, SubmissionSession):
            session.trusted = trusted
            self.require_starttls = False  # this connection's own: the network is vouched for

    async def push(self, status: AnyStr) -> None:
        ours = builtin(status) if isinstance(status, str) else None
        if ours is None:
            await super().push(status)
            return
        if ours.reason:
            count_refusal(self.session, ours)
        await super().push(ours.text)

    async def smtp_AUTH(self, arg: str) -> None:
        """RFC 4954 4: no AUTH during a mail transaction (a session's identity can't change
        between its MAIL and its DATA)."""
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push("503 5.5.1 AUTH not permitted during a mail transaction")
            return
        await super().smtp_AUTH(arg)

    def connection_lost(self, error: Exception | None) -> None:
        session = self.session
        if isinstance(session, SubmissionSession) and session.host_name is not None:
            credential = _credential(session)
            log.info(json.dumps({
                "kind": "smtp-session", "listener": self.listener,
                "tls": self.listener == IMPLICIT_TLS or session.ssl is not None,
                "trusted": session.trusted is not None,
                "account": credential.account_id if credential is not None else None,
                "messages": session.messages, "refused": session.refused,
                "ms": round((monotonic() - session.started) * 1000, 2)}))
        super().connection_lost(error)


@dataclass
class Submission(Closing):
    """What the listeners of one process share: the services, the sends' group commit,
    the logins; and the listeners."""

    services: Services
    logins: Logins
    sends: GroupCommit[SendAttempt, Accepted] = field(init=False)
    trusted: TrustedNetworks = field(init=False)
    sessions: Sessions = field(init=False)  # open in all and per network, both listeners'
    servers: list[asyncio.Server] = field(default_factory=list)
    # A platform split into regions (SPEC N11): each region's own, by name (this one among
    # them); a login's or trusted network's domain names the region its mail goes to.
    regions: dict[str, Submission] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings = self.services.settings
        self.trusted = TrustedNetworks(self.services)
        self.sessions = Sessions(settings.smtp_max_sessions, settings.smtp_max_sessions_per_ip)
        self.sends = group_commit(self.services.db, self.services.vault, self.services.clock,
                                  require_verified=settings.require_verified_domains,
                                  sender_policy=settings.sender_policy,
                                  public_url=settings.public_url)

    def close(self) -> None:
        super().close()
        self.logins.close()
        for other in self.regions.values():
            if other is not self:
                other.logins.close()

    async def of_domain(self, domain: str) -> Submission:
        """The submission of the region holding `domain` (this one when it is the only one,
        or no region has the domain: it refuses as it would)."""
        if not self.regions:
            return self
        found = await asyncio.to_thread(for_domain, self.services.platform, domain)
        return self.regions.get(found.region, self) if found is not None else self


class SubmissionHandler:
    """What the server answers: aiosmtpd speaks SMTP, this decides."""

    def __init__(self, submission: Submission, listener: str) -> None:
        self.submission, self.listener = submission, listener

    async def handle_EHLO(self, _server: SMTP, session: Session, _envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads pipelined commands as they come; it just doesn't say so
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: authorization identity, login and password, NUL-separated. A login acts
        only as itself: an authorization identity other than it is refused."""
        given = await _response(server, args[1] if len(args) > 1 else None, "")
        if given is None:
            return AuthResult(success=False, handled=True)
        parts = given.split(b"\0")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authorize, login, password = parts
        if authorize and _login(authorize) != _login(login):  # acting as another: refused
            AUTH_FAILURES.labels("authorization-identity").inc()
            return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS)
        return await self._check(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """The draft-murchison-sasl-login exchange most clients still use."""
        login = await _response(server, args[1] if len(args) > 1 else None, "Username:")
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await _response(server, None, "Password:")
        if password is None:
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def _check(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        peer = server.session.peer
        host = peer[0] if isinstance(peer, tuple) else peer
        submission = await self.submission.of_domain(_login(login).rpartition("@")[2])
        checked = await submission.logins.check(host, login, password)
        if isinstance(checked, str):
            return AuthResult(success=False, handled=False, message=checked)
        self.submission = submission  # this connection's mail goes to the login's region
        return AuthResult(success=True, auth_data=checked)

    async def handle_MAIL(self, _server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        proved = session.auth_data if session.authenticated else None
        credential = _credential(session)
        if credential is None and isinstance(session, SubmissionSession) and session.trusted:
            self.submission = await self.submission.of_domain(session.trusted.domain)
            try:
                credential = await asyncio.to_thread(self.submission.trusted.credential,
                                                     session.trusted)
            except MailhavenError as exc:
                log.warning("smtp submission: %s", exc.message)
                return self._refuse(session, UNKNOWN_TRUSTED_DOMAIN)
            session.trusted_as = credential
        if credential is None:
            return self._refuse(session, NOT_AUTHENTICATED)
        try:  # one thread hop and one database session for both checks
            revoked = await asyncio.to_thread(
                self._check_mail, proved if isinstance(proved, Login) else None, credential,
                address)
        except MailhavenError as exc:
            return self._refuse(session, replace(refusal(exc), reason="sender"))
        if revoked:
            session.authenticated, session.auth_data = False, None  # it may AUTH anew
            return self._refuse(session, REVOKED)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    def _check_mail(self, proved: Login | None, credential: Credential, address: str) -> bool:
        """At each MAIL: whether the login AUTH proved was since deleted or its password
        changed (True: revoked); and, under the domain sender policy, that the envelope
        sender is at a domain of the credential's account, as the From must be
        (`sending.identity`; a refusal raised)."""
        services = self.submission.services
        with services.db.sessions() as session:
            if proved is not None and not still_current(session, proved):
                return True
            if services.settings.sender_policy != identity.DOMAIN:
                return False
            domain = owned_domain(session, credential.account_id, credential.domain_name,
                                  with_keys=False)
            identity.check_domains(
                session, domain, [address.rpartition("@")[2]], refusal=ENVELOPE_NOT_YOURS,
                require_verified=services.settings.require_verified_domains)
        return False

    async def handle_RCPT(self, _server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return self._refuse(session, TOO_MANY_RECIPIENTS)
        if not valid_addresses([address]):
            return self._refuse(session, BAD_RECIPIENT)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        started = monotonic()
        credential = _credential(session)
        assert credential is not None  # MAIL took the envelope only once authenticated
        raw = envelope.original_content or b""
        accepted: Accepted | None = None
        submitted: Submitted | None = None
        try:
            submitted = read_submission(raw)
            accepted = await self.submission.sends.submit(SendAttempt(
                credential.account_id, credential.domain_name,
                [*submitted.fields, *(("to", rcpt) for rcpt in envelope.rcpt_tos)],
                [("message", Attachment("message.eml", "message/rfc822", submitted.message))],
                mime=True, method="smtp"))
        except MailhavenError as exc:
            reply = refusal(exc, submitted.worded(exc.message) if submitted else None)
        except Exception as exc:  # ours to log, never the sender's to read
            if not outage.refused("smtp", exc):
                log.error("smtp submission: %s", frames(exc))
            reply = OUT_OF_SPACE if is_out_of_space(exc) else TEMPORARY_FAILURE
        else:
            outage.answered()
            self.submission.services.delivery_bell.ring()  # committed: a worker starts now
            reply = Reply(f"250 2.0.0 OK: queued as {one_line(accepted.id)}", "accepted")
        if accepted is None:
            self._refuse(session, reply)
        else:
            ACCEPTED.inc()
        if isinstance(session, SubmissionSession):
            session.messages += 1
        log.info(json.dumps({
            "kind": "smtp", "listener": self.listener, "status": reply.status,
            "reason": reply.reason, "account": credential.account_id,
            "recipients": len(envelope.rcpt_tos), "bytes": len(raw),
            "ms": round((monotonic() - started) * 1000, 2)}))
        return reply.text

    async def handle_exception(self, error: Exception) -> str:
        """Whatever went wrong is ours to log, never the client's to read (aiosmtpd would
        answer with the exception's text). A STARTTLS handshake the client gave up (it
        didn't trust the certificate, say) is the client's affair: aiosmtpd closes the
        connection, and the log says so in one line."""
        if isinstance(error, TLSSetupException):
            log.info(json.dumps({"kind": "smtp", "listener": self.listener,
                                 "state": "TLS handshake failed"}))
        elif not outage.refused("smtp", error):
            log.error("smtp submission: %s", frames(error))
        return TEMPORARY_FAILURE.text

    def _refuse(self, session: Session, reply: Reply) -> str:
        count_refusal(session, reply)
        return reply.text


def count_refusal(session: Session | None, reply: Reply) -> None:
    REFUSED.labels(reply.reason).inc()
    if isinstance(session, SubmissionSession):
        session.refused[reply.reason] = session.refused.get(reply.reason, 0) + 1


def _credential(session: Session) -> Credential | None:
    """Who the session submits as: the credential AUTH proved, or its trusted network's."""
    found = session.auth_data if session.authenticated else None
    if isinstance(found, Login):
        return found.credential
    return session.trusted_as if isinstance(session, SubmissionSession) else None


def _login(given: bytes) -> str:
    return canonical_login(given.decode("utf-8", "replace"))


async def _response(server: SMTP, given: str | None, challenge: str) -> bytes | None:
    """A SASL response: `given` with the AUTH command, or asked for with `challenge`;
    None once the client has been answered (it cancelled, or it wasn't base64)."""
    if given is None:
        answer = await server.challenge_auth(challenge)
        return answer if isinstance(answer, bytes) else None
    try:
        return base64.b64decode(given.encode(), validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None


async def start_submission(services: Services, starttls: socket.socket,
                           implicit_tls: socket.socket | None, *,
                           logins: Logins | None = None,
                           regions: list[Services] | None = None) -> Submission:
    """Serve submissions on bound sockets: STARTTLS on `starttls`, implicit TLS on
    `implicit_tls` if given; with several `regions`, each login's domain names the region
    (one throttle counts the failures of all). The caller closes the submission."""
    settings = services.settings
    context = await asyncio.to_thread(server_context, settings)
    submission = Submission(services, logins or Logins(services))
    if regions is not None and len(regions) > 1:
        submission.regions = {
            other.region: submission if other is services
            else Submission(other, Logins(other, submission.logins.throttle))
            for other in regions}
    loop = asyncio.get_running_loop()

    def protocol(listener: str) -> SubmissionSMTP:
        """STARTTLS offered on one listener; on the other, TLS begun by the protocol once the
        client is counted (`LimitedSMTP`), not by the server before it is."""
        starts = listener == STARTTLS
        return SubmissionSMTP(
            SubmissionHandler(submission, listener), hostname=settings.hostname, ident=IDENT,
            loop=loop, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True,
            tls_context=context if starts else None, require_starttls=starts,
            auth_require_tls=starts, timeout=settings.smtp_idle_seconds,
            implicit_tls=None if starts else context,
            handshake_seconds=settings.smtp_tls_handshake_seconds)

    try:
        submission.servers.append(await loop.create_server(
            lambda: protocol(STARTTLS), sock=starttls))
        if implicit_tls is not None:
            submission.servers.append(await loop.create_server(
                lambda: protocol(IMPLICIT_TLS), sock=implicit_tls))
    except BaseException:
        submission.close()
        raise
    return submission
