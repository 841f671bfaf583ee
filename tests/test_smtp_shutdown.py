"""Stopping an SMTP door (submission or MX) with clients still connected: each open session
is told 421 and closed, and nothing of it outlives the server — its event loop closes with
no connection left behind (a leaked one surfaces as an unraisable warning when collected,
which the suite turns into a failure)."""

from __future__ import annotations

import gc
import socket
import time

from mailhaven.services import Services
from tests.inbound.conftest import RunningMx
from tests.submission.conftest import RunningSubmission, on_loopback


def _greeted(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    assert client.recv(1024).startswith(b"220")
    client.sendall(b"EHLO client.test\r\n")
    reply = b""
    while not any(line.startswith(b"250 ") for line in reply.split(b"\r\n")):
        reply += client.recv(4096)
    return client


def _after_stop(client: socket.socket) -> bytes:
    """All the client reads until the server closes the connection."""
    received = b""
    while chunk := client.recv(1024):
        received += chunk
    client.close()
    return received


def test_a_submission_session_open_at_shutdown_is_told_421(services: Services) -> None:
    running = RunningSubmission(on_loopback(services)).__enter__()
    mid_session, silent = _greeted(running.port), socket.create_connection(
        ("127.0.0.1", running.tls_port), timeout=30)  # still in its TLS handshake
    assert running.submission is not None
    deadline = time.monotonic() + 30
    while len(running.submission.sessions.live) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the server has accepted the silent one too
    running.__exit__(None, None, None)
    assert _after_stop(mid_session).startswith(b"421 4.3.2 ")
    assert _after_stop(silent) == b""
    gc.collect()


def test_an_mx_session_open_at_shutdown_is_told_421(services: Services) -> None:
    running = RunningMx(services).__enter__()
    client = _greeted(running.port)
    running.__exit__(None, None, None)
    assert _after_stop(client).startswith(b"421 4.3.2 ")
    gc.collect()
