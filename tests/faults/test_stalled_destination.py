"""A destination that takes the TCP connection and then falls silent (no greeting; or no
answer to the message's final dot): the attempt times out (MAILHAVEN_SMTP_CONNECT_TIMEOUT,
MAILHAVEN_SMTP_DATA_TIMEOUT) and the copy is deferred, not bounced — and while it hangs,
mail to other domains keeps flowing through the worker's other slots."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time

import pytest

from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.services import Services
from tests.delivery.sinks import DnsServer, events, queue_rows, send
from tests.support import Sink

STALL_SECONDS = 6.0  # the timeouts the test sets: a loaded machine delivers elsewhere by then
DEADLINE = 60.0
ZONE = {"stalled.test": {"MX": ["10 mx.stalled.test."]},
        "mx.stalled.test": {"A": ["127.0.0.2"]},
        "flowing.test": {"MX": ["10 mx.flowing.test."]},
        "mx.flowing.test": {"A": ["127.0.0.1"]}}


class StallingServer:
    """A mail server on 127.0.0.2 that goes silent: at once (`after="connect"`: never a
    greeting), or after reading a message up to its final dot (`after="data"`). Counts the
    connections it holds open."""

    def __init__(self, port: int, after: str) -> None:
        self.after = after
        self.open = 0
        self.messages = 0  # read up to the final dot, never answered
        self._listener = socket.create_server(("127.0.0.2", port))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> StallingServer:
        self._threads.append(threading.Thread(target=self._accept, daemon=True))
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _session(self, conn: socket.socket) -> None:
        self.open += 1
        conn.settimeout(0.1)
        buffer, in_data = b"", False
        if self.after == "data":
            conn.sendall(b"220 mx.stalled.test ESMTP\r\n")
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break  # the client gave up
                buffer += chunk
                if self.after != "data":
                    continue  # silent from the start
                while not in_data and b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        conn.sendall(b"250-mx.stalled.test\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        in_data = True
                    else:
                        conn.sendall(b"250 OK\r\n")
                if in_data and b"\r\n.\r\n" in buffer:
                    self.messages += 1
                    buffer, in_data = b"", False  # and never a word in answer
        finally:
            self.open -= 1
            conn.close()


def _routed(services: Services, dns: DnsServer, port: int) -> Services:
    return dataclasses.replace(services, settings=services.settings.with_(
        relayhost=None, dns_nameserver=dns.address, smtp_delivery_port=port,
        smtp_connect_seconds=STALL_SECONDS, smtp_command_seconds=STALL_SECONDS,
        smtp_data_seconds=STALL_SECONDS))


@pytest.mark.parametrize("after, code, enhanced", [
    ("connect", 421, "4.4.1"),  # no greeting: the host could not be used
    ("data", 421, "4.4.2"),  # no answer to the final dot: the connection failed
])
def test_a_stalled_destination_is_deferred_while_other_mail_flows(
        api, services, clock, domain, after, code, enhanced) -> None:
    stalled = [f"s{i}@stalled.test" for i in range(3)]
    flowing = [f"f{i}@flowing.test" for i in range(4)]
    for address in [*stalled, *flowing]:  # the stalled ones first: claimed first
        send(api, domain, {"to": address})
        clock.advance(0.001)  # due in that order: a tie's order is the database's to choose
    with DnsServer(ZONE) as dns, Sink() as sink, StallingServer(sink.port, after) as stall:
        # four slots: three hang on the stalled host, the fourth carries everything else
        worker = DeliveryWorker(_routed(services, dns, sink.port), concurrency=4)

        async def drain() -> None:
            try:
                await worker.drain()
            finally:
                await worker.close()
        running = threading.Thread(target=asyncio.run, args=(drain(),))
        running.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while len(sink.received) < len(flowing):
                assert time.monotonic() < deadline, "mail to the other domain did not flow"
                time.sleep(0.05)
            hanging = stall.open  # read at once: the stalled attempts are still waiting
        finally:
            running.join(timeout=DEADLINE)
        assert not running.is_alive(), "the stalled attempts never timed out"

    assert sorted(r.rcpt_tos[0] for r in sink.received) == flowing
    assert hanging == len(stalled), "the other domain's mail waited for the stalled one"
    if after == "data":
        assert stall.messages == len(stalled)
    failed = events(api, domain, "failed")
    assert sorted(e["recipient"] for e in failed) == stalled
    for event in failed:
        assert event["severity"] == "temporary"
        status = event["delivery-status"]
        assert (status["code"], status["enhanced-code"]) == (code, enhanced)
        assert status["retry-seconds"] > 0
    assert sorted(row.status for row in queue_rows(services)) == \
        ["delivered"] * len(flowing) + ["queued"] * len(stalled)
    assert api.get(f"/v3/{domain}/bounces").json()["items"] == []
