"""SIGKILL of `mailhaven serve` (the real process: API and delivery worker in one, on
PostgreSQL) while four HTTP clients send; then it is started again.

Every message answered 200 reaches the recipient's server; none reaches it twice. A message
whose request got an error or lost its connection may be delivered or not, but never twice
either. A copy the killed process had handed to the recipient's server but not yet recorded
as delivered would be sent again after its lease (SMTP cannot tell "sent" from "about to
be"); such duplicates are counted and may not exceed the copies the killed process held.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from mailhaven.delivery.models import Delivery
from mailhaven.services import Services
from tests.support import Sink, free_port

CLIENTS = 4
MESSAGES = 400
KILL_AFTER = 120  # answered 200 before the kill
LEASE_SECONDS = 5  # a copy the killed process held is free again this soon
DEADLINE = 180.0
CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()", "serve"]

ANSWERED, ERROR, DROPPED = "200", "error", "dropped"


class Serve:
    """`mailhaven serve` on the test's database, delivering to the sink."""

    def __init__(self, services: Services, sink: Sink, folder: Path) -> None:
        settings = services.settings
        self.http = free_port()
        self.folder = folder
        self.env = {
            **os.environ,
            "MAILHAVEN_DATABASE_URL": settings.database_url,
            "MAILHAVEN_DATA_DIR": str(settings.data_dir),
            "MAILHAVEN_HTTP_PORT": str(self.http),
            "MAILHAVEN_SMTP_PORT": str(free_port()), "MAILHAVEN_SMTPS_PORT": "0",
            "MAILHAVEN_MX_PORT": str(free_port()),
            "MAILHAVEN_RELAYHOST": f"127.0.0.1:{sink.port}",
            "MAILHAVEN_LEASE_SECONDS": str(LEASE_SECONDS),
            "MAILHAVEN_HOSTNAME": "mx.mailhaven.test",
            "MAILHAVEN_REQUIRE_VERIFIED_DOMAINS": "0",
            "MAILHAVEN_DNS_NAMESERVER": f"127.0.0.1:{free_port()}",  # nothing: no lookups out
            "MAILHAVEN_DNS_TIMEOUT": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.folder / f"serve-{self.starts}.log", "wb") as log:
            self.process = subprocess.Popen(CLI, env=self.env, stdout=subprocess.DEVNULL,
                                            stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"http://127.0.0.1:{self.http}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start: " + self.log()
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # the process and any child of its own
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        return (self.folder / f"serve-{self.starts}.log").read_text(errors="replace")[-3000:]


def _client(base_url: str, api_key: str, domain: str, seqs: range,
            results: dict[int, str], stop: threading.Event) -> None:
    """Send each message once; a request refused before it was sent (the server is down)
    is made again, any other failure is recorded and not repeated."""
    with httpx.Client(base_url=base_url, auth=("api", api_key), timeout=30) as client:
        for seq in seqs:
            while not stop.is_set():
                try:
                    reply = client.post(f"/v3/{domain}/messages", data={
                        "from": f"ops@{domain}", "to": f"r{seq}@example.org",
                        "subject": f"message {seq}", "text": "kill test",
                        "h:X-Seq": str(seq)})
                except httpx.ConnectError:
                    time.sleep(0.1)  # nothing was sent: try again once it is back
                    continue
                except httpx.TransportError:
                    results[seq] = DROPPED
                    break
                results[seq] = ANSWERED if reply.status_code == 200 else ERROR
                break


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_killed_serve_loses_no_answered_message_and_sends_none_twice(
        services, account, domain, tmp_path, record_property) -> None:
    results: dict[int, str] = {}
    stop = threading.Event()
    with Sink() as sink:
        serve = Serve(services, sink, tmp_path)
        serve.start()
        base_url = f"http://127.0.0.1:{serve.http}"
        clients = [threading.Thread(target=_client, args=(
            base_url, account[1], domain, range(i, MESSAGES, CLIENTS), results, stop))
            for i in range(CLIENTS)]
        try:
            for thread in clients:
                thread.start()
            deadline = time.monotonic() + DEADLINE
            while sum(r == ANSWERED for r in list(results.values())) < KILL_AFTER:
                assert time.monotonic() < deadline, "the clients made no progress"
                time.sleep(0.01)
            serve.kill()
            with services.db.sessions() as session:  # what the killed process held
                held = session.scalar(select(func.count()).select_from(Delivery).where(
                    Delivery.status == "queued", Delivery.lease_owner.is_not(None)))
            at_the_kill = len(sink.received)
            serve.start()
            for thread in clients:
                thread.join(timeout=max(1.0, deadline - time.monotonic()))
            assert not any(t.is_alive() for t in clients), "the clients did not finish"

            answered = {seq for seq, r in results.items() if r == ANSWERED}
            while True:  # every 200 at the sink, and nothing left queued
                with services.db.sessions() as session:
                    queued = session.scalar(select(func.count()).select_from(Delivery).where(
                        Delivery.status == "queued"))
                delivered = {int(r.message["X-Seq"]) for r in list(sink.received)}
                if answered <= delivered and not queued:
                    break
                assert time.monotonic() < deadline, (
                    f"{len(answered - delivered)} answered messages not delivered, {queued} "
                    f"queued; logs in {tmp_path}")
                time.sleep(0.2)
            time.sleep(LEASE_SECONDS + 1)  # a copy sent twice would have shown by now
        finally:
            stop.set()
            serve.stop()

    counts = Counter(int(r.message["X-Seq"]) for r in sink.received)
    duplicates = sum(n - 1 for n in counts.values())
    outcomes = Counter(results.values())
    record_property("duplicates", duplicates)
    print(f"\nkill test: {dict(outcomes)}, {at_the_kill} at the sink at the kill, {held} "
          f"held by the killed process, {duplicates} delivered twice")
    assert len(results) == MESSAGES
    assert answered <= set(counts), "a message answered 200 was lost"
    assert set(counts) <= set(results), "a message nobody sent was delivered"
    # Only a copy the killed process held can be sent twice: one whose 250 it had read but
    # not yet recorded. Measured: 0 to 2 of the 2 to 5 it holds at a kill.
    assert duplicates <= held, "more duplicates than the killed process held"
