"""Abuse of SMTP submission (issue 16, item 4): sessions in all and per client network
(an IPv6 /64 counted as one client), TLS handshakes on the implicit-TLS port counted and cut
short, a session's errors (guessed logins) slowed then closed, silence, overlong commands.
Message size, recipients per message and the per-network AUTH throttle are tested in
tests/submission (cited in docs/security.md, "Limits at every door")."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import REGISTRY

from mailhaven.clock import FrozenClock
from mailhaven.services import Services
from mailhaven.submission.auth import Logins
from mailhaven.submission.limits import (
    COMMAND_TOO_LONG,
    IDLE_TOO_LONG,
    TOO_MANY_ERRORS,
    TOO_MANY_SESSIONS,
)
from mailhaven.submission.server import STARTTLS, Submission, SubmissionHandler, SubmissionSMTP
from mailhaven.submission.throttle import AuthThrottle
from tests.abuse.peers import a_network_shares_its_sessions_and_the_door_has_a_cap
from tests.submission.conftest import LOGIN, PASSWORD, RunningSubmission, on_loopback


@contextmanager
def running(services: Services, clock: FrozenClock, **limits: object,
            ) -> Iterator[RunningSubmission]:
    changed = dataclasses.replace(services, settings=services.settings.with_(**limits))
    with RunningSubmission(on_loopback(changed), AuthThrottle(clock, delay_step=0)) as running:
        yield running


def _starttls(submission: RunningSubmission) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", submission.port, timeout=60)
    client.starttls(context=submission.context())
    client.ehlo()
    return client


def _auth(client: smtplib.SMTP, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN (smtplib's login() tries each method the server offers in turn)."""
    return client.docmd("AUTH", "PLAIN " + base64.b64encode(
        f"\0{LOGIN}\0{password}".encode()).decode())


def test_wrong_logins_in_one_session_are_slowed_then_closed_with_421(
        services, credential, clock) -> None:
    with running(services, clock, smtp_soft_error_limit=1, smtp_hard_error_limit=3,
                 smtp_error_delay_seconds=0.5) as submission:
        with _starttls(submission) as client:
            assert _auth(client, "guess-1")[0] == 535
            started = time.monotonic()
            assert _auth(client, "guess-2")[0] == 535
            assert time.monotonic() - started >= 0.5  # past the soft limit: answered late
            assert _auth(client, "guess-3")[0] == 535
            code, reply = client.getreply()  # and then, unasked, the hard limit's 421
            assert f"{code} {reply.decode()}" == TOO_MANY_ERRORS
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        with _starttls(submission) as again:  # a new session may log in
            assert _auth(again, PASSWORD)[0] == 235


def test_sessions_per_client_address_are_bounded_but_not_a_trusted_network_s(
        services, credential, clock) -> None:
    with running(services, clock, smtp_max_sessions_per_ip=2) as submission:
        first, second = _starttls(submission), _starttls(submission)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", submission.port, timeout=60)
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error.startswith(b"4.7.0 Too many connections")
        # The implicit-TLS listener counts the same sessions: closed before any handshake.
        with pytest.raises(OSError):
            smtplib.SMTP_SSL("127.0.0.1", submission.tls_port, timeout=60,
                             context=submission.context())
        first.quit()
        deadline = time.monotonic() + 30
        while True:  # the server notices the QUIT's close on its own time
            try:
                third = _starttls(submission)
                break
            except smtplib.SMTPConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert third.login(LOGIN, PASSWORD)[0] == 235
        third.quit()
        second.quit()
    trusted = (("127.0.0.0/8", "mg.acme.test"),)
    with running(services, clock, smtp_max_sessions_per_ip=1,
                 smtp_trusted_networks=trusted) as submission:
        clients = [smtplib.SMTP("127.0.0.1", submission.port, timeout=60) for _ in range(3)]
        assert [c.noop()[0] for c in clients] == [250] * 3
        for client in clients:
            client.quit()


def test_addresses_of_one_ipv6_64_share_its_sessions_and_all_are_capped(services) -> None:
    """Loopback has one IPv6 address: the addresses of a /64 come as the event loop would
    hand them to the server's protocol (`tests.abuse.peers`)."""
    limited = dataclasses.replace(services, settings=services.settings.with_(
        smtp_max_sessions=3, smtp_max_sessions_per_ip=2))

    async def scenario() -> None:
        submission = Submission(limited, Logins(limited))
        loop = asyncio.get_running_loop()
        try:
            await a_network_shares_its_sessions_and_the_door_has_a_cap(
                lambda: SubmissionSMTP(SubmissionHandler(submission, STARTTLS),
                                       hostname="127.0.0.1", loop=loop, timeout=60),
                TOO_MANY_SESSIONS)
        finally:
            submission.close()

    asyncio.run(scenario())


def test_sessions_in_all_are_capped(services, credential, clock) -> None:
    with running(services, clock, smtp_max_sessions=2) as submission:
        clients = [smtplib.SMTP("127.0.0.1", submission.port, timeout=60,
                                source_address=(f"127.0.0.{n}", 0)) for n in (1, 2)]
        with pytest.raises(smtplib.SMTPConnectError) as refused:  # a third address
            smtplib.SMTP("127.0.0.1", submission.port, timeout=60,
                         source_address=("127.0.0.3", 0))
        assert refused.value.smtp_code == 421
        for client in clients:
            client.quit()


def _handshakes_cut() -> float:
    return REGISTRY.get_sample_value("mailhaven_smtp_sessions_closed_total",
                                     {"door": "submission", "limit": "handshake"}) or 0.0


def test_a_tls_handshake_never_finished_is_counted_then_cut_short(
        services, credential, clock) -> None:
    """Port 465: a client that connects and never starts TLS holds a session from the
    moment it connects, and for `smtp_tls_handshake_seconds` only."""
    cut = _handshakes_cut()
    with running(services, clock, smtp_max_sessions_per_ip=1,
                 smtp_tls_handshake_seconds=1) as submission, \
            socket.create_connection(("127.0.0.1", submission.tls_port), timeout=30) as silent:
        # A second connection there, accepted after the first, is closed at once...
        with socket.create_connection(("127.0.0.1", submission.tls_port), timeout=30) as late:
            assert late.recv(1) == b""
        # ...and so is one to the other listener: the silent one holds the network's share.
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", submission.port, timeout=60)
        assert refused.value.smtp_code == 421
        assert silent.recv(1) == b""  # a second later, the server gives up on it
        deadline = time.monotonic() + 30
        while True:  # and its share is free again
            try:
                client = _starttls(submission)
                break
            except smtplib.SMTPConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert client.login(LOGIN, PASSWORD)[0] == 235
        client.quit()
    assert _handshakes_cut() == cut + 1


def _read_until_closed(sock: socket.socket) -> bytes:
    said = b""
    while chunk := sock.recv(4096):
        said += chunk
    return said


def test_an_idle_session_is_told_421_and_closed(services, credential, clock) -> None:
    with running(services, clock, smtp_idle_seconds=1) as submission, \
            socket.create_connection(("127.0.0.1", submission.port), timeout=60) as sock:
        sock.sendall(b"EHLO client.test\r\n")
        said = _read_until_closed(sock)
    assert said.startswith(b"220 ") and said.endswith(f"{IDLE_TOO_LONG}\r\n".encode())


def test_an_overlong_command_line_is_500_5_5_2(services, credential, clock) -> None:
    with running(services, clock) as submission, _starttls(submission) as client:
        code, reply = client.docmd("NOOP", "x" * 600)
        assert f"{code} {reply.decode()}" == COMMAND_TOO_LONG
        assert client.noop()[0] == 250  # the session goes on
