"""Crash safety on PostgreSQL: two worker processes, one killed with SIGKILL mid-run.

Every accepted message must reach the sink; duplicates (a copy sent by the killed worker
whose success it never recorded) are counted and reported, and kept within what one
worker can have in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from mailhaven.delivery.models import Delivery
from mailhaven.domains.service import owned_domain
from mailhaven.events.models import Event
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept
from tests.support import Sink

MESSAGES = 2000
CONCURRENCY = 20
DEADLINE_SECONDS = 240


def _start_worker(services, sink: Sink, log_path) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    settings = services.settings
    env = {**os.environ,
           "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir),
           "MAILHAVEN_RELAYHOST": f"127.0.0.1:{sink.port}",
           "MAILHAVEN_LEASE_SECONDS": "5",
           "MAILHAVEN_HOSTNAME": "mx.mailhaven.test"}
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", "from mailhaven.cli import app; app()", "worker",
             "--concurrency", str(CONCURRENCY)],
            env=env, stdout=subprocess.DEVNULL, stderr=log)


def _enqueue(services, account_id: str, domain_name: str) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, MESSAGES, 200):
        with services.db.transaction() as session:
            domain = owned_domain(session, account_id, domain_name)
            for seq in range(start, start + 200):
                request = build_request([
                    ("from", f"ops@{domain_name}"), ("to", f"r{seq}@example.org"),
                    ("subject", f"message {seq}"), ("text", "crash test"),
                    ("h:X-Seq", str(seq)),
                ], [])
                accept(session, services.vault, domain, request, services.clock)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_no_message_is_lost_when_a_worker_is_killed(services, account, domain, tmp_path,
                                                    record_property) -> None:
    _enqueue(services, account[0], domain)
    with Sink() as sink:
        workers = [_start_worker(services, sink, tmp_path / f"w{i}.log") for i in range(2)]
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while len(sink.received) < MESSAGES // 3:
                assert time.monotonic() < deadline, "workers made no progress"
                assert all(w.poll() is None for w in workers), "a worker exited early"
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            workers[0] = _start_worker(services, sink, tmp_path / "w0-restarted.log")

            def delivered_seqs() -> set[int]:
                return {int(r.message["X-Seq"]) for r in list(sink.received)}

            while len(delivered_seqs()) < MESSAGES:
                assert time.monotonic() < deadline, (
                    f"only {len(delivered_seqs())} of {MESSAGES} delivered; logs in {tmp_path}")
                time.sleep(0.2)
            time.sleep(1)  # let the workers record the last outcomes
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)

    duplicates = len(sink.received) - MESSAGES
    record_property("duplicates", duplicates)
    print(f"\ncrash test: {MESSAGES} messages, {duplicates} delivered twice")
    assert delivered_seqs() == set(range(MESSAGES))
    assert duplicates <= CONCURRENCY, "more duplicates than one worker can have in flight"

    with services.db.sessions() as session:
        statuses = dict(session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        delivered_events = session.scalar(
            select(func.count()).select_from(Event).where(Event.event == "delivered"))
    assert statuses == {"delivered": MESSAGES}
    assert delivered_events == MESSAGES
