"""Abuse of the MX (issue 16, item 4): the addresses of one IPv6 /64 counted as one client,
a flood of unknown recipients slowed then closed, and silence. Message size, recipients
per message, sessions in all and per client address are tested in tests/inbound/test_mx.py
(cited in docs/security.md, "Limits at every door")."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import socket
import time

import pytest

from mailhaven.inbound.listener import InboundHandler, InboundSMTP
from mailhaven.submission.limits import IDLE_TOO_LONG, TOO_MANY_ERRORS, TOO_MANY_SESSIONS
from tests.abuse.peers import a_network_shares_its_sessions_and_the_door_has_a_cap
from tests.inbound.conftest import RunningMx, message, rows, with_nameserver


def test_addresses_of_one_ipv6_64_share_its_sessions(services) -> None:
    """Loopback has one IPv6 address: the addresses of a /64 come as the event loop would
    hand them to the MX's protocol (`tests.abuse.peers`)."""
    handler = InboundHandler(dataclasses.replace(services, settings=services.settings.with_(
        mx_max_sessions=3, mx_max_sessions_per_ip=2)))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await a_network_shares_its_sessions_and_the_door_has_a_cap(
            lambda: InboundSMTP(handler, hostname="127.0.0.1", loop=loop, timeout=60),
            TOO_MANY_SESSIONS)

    asyncio.run(scenario())


def test_a_flood_of_unknown_recipients_is_slowed_then_closed_with_421(
        services, dns_server, domain) -> None:
    limits = {"smtp_soft_error_limit": 2, "smtp_hard_error_limit": 4,
              "smtp_error_delay_seconds": 0.5}
    with RunningMx(with_nameserver(services, dns_server, **limits)) as mx:
        with mx.client() as client:
            client.ehlo()
            client.mail("spammer@sender.test")
            assert client.rcpt("support@mg.acme.test")[0] == 250  # a known one: no error
            for n in range(2):
                assert client.rcpt(f"guess{n}@elsewhere.test")[0] == 550
            started = time.monotonic()
            assert client.rcpt("guess2@elsewhere.test")[0] == 550
            assert time.monotonic() - started >= 0.5  # past the soft limit: answered late
            assert client.rcpt("guess3@elsewhere.test")[0] == 550
            code, reply = client.getreply()
            assert f"{code} {reply.decode()}" == TOO_MANY_ERRORS
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        # Another session starts afresh, and nothing of the closed one was stored.
        assert mx.send("ann@sender.test", ["support@mg.acme.test"], message()) == {}
    assert len(rows(services)) == 1


def test_an_idle_session_is_told_421_and_closed(services, dns_server, domain) -> None:
    with RunningMx(with_nameserver(services, dns_server, smtp_idle_seconds=1)) as mx, \
            socket.create_connection(("127.0.0.1", mx.port), timeout=60) as sock:
        sock.sendall(b"EHLO client.test\r\nMAIL FROM:<ann@sender.test>\r\n")
        said = b""
        while chunk := sock.recv(4096):
            said += chunk
    assert said.startswith(b"220 ") and said.endswith(f"{IDLE_TOO_LONG}\r\n".encode())
