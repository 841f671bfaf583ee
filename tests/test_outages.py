"""A database outage is an ordinary event: the API answers 503 with Retry-After (never a
500), /healthz says so, the log has one line when it starts and one when it ends, and the
API works again by itself when the database is back. On a PostgreSQL cluster of the test's
own (initdb + pg_ctl), stopped and started under a live server."""

from __future__ import annotations

import base64
import logging
import smtplib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailhaven.clock import FrozenClock
from mailhaven.credentials import service as credentials
from mailhaven.delivery.models import Delivery
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.services import Services
from tests.outage_support import Cluster, on_cluster, private_cluster, run_until
from tests.submission.conftest import RunningSubmission
from tests.support import (
    LiveServer,
    Sink,
    SinkBehaviour,
    deliver_due,
    run_loop,
    with_relay,
)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from private_cluster()


def test_an_outage_is_answered_503_and_the_api_recovers_by_itself(
        cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services, api_key, _domain = on_cluster(cluster, tmp_path, FrozenClock(),
                                             hostname="mx.mailhaven.test")
    try:
        message = {"from": "news@mg.acme.test", "to": "ann@example.org", "subject": "Hi",
                   "text": "Hello"}
        with (LiveServer(services) as live, live.client(api_key) as api,
              live.client() as anonymous):
            assert api.post("/v3/mg.acme.test/messages", data=message).status_code == 200
            cluster.stop()
            caplog.set_level(logging.INFO, logger="mailhaven.http")
            refused = [api.post("/v3/mg.acme.test/messages", data=message),
                       api.get("/v3/mg.acme.test/events"),
                       api.get("/v3/domains")]
            for answer in refused:
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "5"
                assert "retry" in answer.json()["message"]
            assert anonymous.get("/healthz").status_code == 503

            cluster.start()
            assert api.post("/v3/mg.acme.test/messages", data=message).status_code == 200
            assert anonymous.get("/healthz").status_code == 200
            events = api.get("/v3/mg.acme.test/events", params={"event": "accepted"})
            assert len(events.json()["items"]) == 2  # the two accepted, nothing from the outage
    finally:
        services.close()
    outages = [r.getMessage() for r in caplog.records if '"kind": "outage"' in r.getMessage()]
    assert len(outages) == 2 and '"started"' in outages[0] and '"ended"' in outages[1]
    assert '"requests_refused": 3' in outages[1]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_smtp_submission_answers_4xx_in_an_outage_and_recovers(
        cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A sender told 4xx keeps the message and tries again: never a 5xx (a bounce) for our
    own outage, and one log line for it, not a traceback per attempt."""
    services, _key, domain = on_cluster(cluster, tmp_path, FrozenClock(), hostname="127.0.0.1")
    try:
        with services.db.transaction() as session:
            credentials.create(session, services.vault, domain, "mailer@mg.acme.test",
                               "s3cret-pass-123", services.clock)
        with RunningSubmission(services) as smtp:
            assert _submit(smtp)[0] == 250
            cluster.stop()
            caplog.clear()
            code, reply = _submit(smtp)
            assert 400 <= code < 500, reply
            cluster.start()
            assert _submit(smtp)[0] == 250
    finally:
        services.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and '"kind": "outage"' in errors[0], errors  # one line, no frames


def _submit(smtp: RunningSubmission) -> tuple[int, str]:
    """AUTH and a message; the first reply that isn't a success, or DATA's."""
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=30) as client:
        client.starttls(context=smtp.context())
        client.ehlo()
        login = base64.b64encode(b"\0mailer@mg.acme.test\0s3cret-pass-123").decode()
        code, text = client.docmd("AUTH", f"PLAIN {login}")
        if code != 235:
            return code, text.decode()
        try:
            client.sendmail("news@mg.acme.test", ["ann@example.org"],
                            b"Subject: Hi\r\nFrom: news@mg.acme.test\r\n\r\nHello\r\n")
        except smtplib.SMTPResponseException as refused:
            return refused.smtp_code, refused.smtp_error.decode()
        return 250, "queued"


def test_a_delivered_copy_whose_settle_met_an_outage_is_settled_when_the_database_returns(
        cluster: Cluster, tmp_path: Path) -> None:
    """The recipient's server took the copy, then the database went away before the worker
    could record it: the worker keeps the outcome and records it when the database is
    back, so the copy is delivered once — not sent again after its lease."""
    clock = FrozenClock()
    services, api_key, _domain = on_cluster(cluster, tmp_path, clock,
                                             hostname="mx.mailhaven.test", lease_seconds=60)
    restart = threading.Timer(2.0, cluster.start)

    def outage_after_taking(_rcpts: list[str]) -> None:
        cluster.stop()  # the message is in; the worker's settle meets no database
        restart.start()
        return None

    try:
        with LiveServer(services) as live, live.client(api_key) as api:
            assert api.post("/v3/mg.acme.test/messages", data={
                "from": "news@mg.acme.test", "to": "ann@example.org", "subject": "Once",
                "text": "Hello"}).status_code == 200
        with Sink(SinkBehaviour(data=outage_after_taking)) as sink:
            run_loop(_work_until(with_relay(services, sink), lambda: not restart.is_alive()
                                 and _statuses(services) == ["delivered"]))
            assert _statuses(services) == ["delivered"]
            clock.advance(3600)  # long past the lease: nothing is due again
            deliver_due(services, sink)
            assert len(sink.received) == 1
    finally:
        restart.cancel()
        services.close()


def _statuses(services: Services) -> list[str]:
    with services.db.sessions() as session:
        return [d.status for d in session.scalars(select(Delivery))]


async def _work_until(services: Services, done: Callable[[], bool]) -> None:
    """A delivery worker's own loop until `done` holds, or 60 seconds."""
    worker = DeliveryWorker(services, concurrency=5)
    try:
        await run_until(worker, done)
    finally:
        await worker.close()
