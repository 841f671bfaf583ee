"""The leased queues besides delivery keep an outcome the database could not take: a POST
its receiver answered 2xx, then the database went away before the settle, is recorded when
the database returns — the receiver gets it once, not again after the lease. On a private
PostgreSQL cluster stopped and started under the sender (`tests.outage_support`). So are
the rows the inbound processor claimed just before the database went away."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailhaven.clock import FrozenClock
from mailhaven.inbound import service as intake
from mailhaven.inbound.auth import Verdicts
from mailhaven.inbound.models import PROCESSED, InboundMessage
from mailhaven.inbound.processor import InboundProcessor
from mailhaven.services import Services
from mailhaven.storage.leases import Lease
from mailhaven.webhooks.models import WebhookDelivery
from mailhaven.webhooks.sender import WebhookSender
from tests.outage_support import Cluster, on_cluster, private_cluster, run_until
from tests.support import LiveServer, WebhookReceiver, run_loop, send_webhooks


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from private_cluster()


def test_a_webhook_post_whose_settle_met_an_outage_is_settled_when_the_database_returns(
        cluster: Cluster, tmp_path: Path) -> None:
    clock = FrozenClock()
    services, api_key, _domain = on_cluster(cluster, tmp_path, clock,
                                            hostname="mx.mailhaven.test",
                                            webhook_allow_private=True)
    restart = threading.Timer(2.0, cluster.start)

    def outage_after_answering(n: int) -> int:
        if n == 1:
            cluster.stop()  # the receiver has it; the sender's settle meets no database
            restart.start()
        return 200

    try:
        with WebhookReceiver(outage_after_answering) as receiver:
            with LiveServer(services) as live, live.client(api_key) as api:
                assert api.post("/v3/domains/mg.acme.test/webhooks", data={
                    "id": "accepted", "url": receiver.url}).status_code == 200
                assert api.post("/v3/mg.acme.test/messages", data={
                    "from": "news@mg.acme.test", "to": "ann@example.org", "subject": "Once",
                    "text": "Hello"}).status_code == 200
            run_loop(run_until(WebhookSender(services), lambda: not restart.is_alive()
                                and _statuses(services) == ["sent"]))
            assert _statuses(services) == ["sent"]
            clock.advance(3600)  # long past the lease: nothing is due again
            assert send_webhooks(services) == 0
            assert len(receiver.received) == 1
    finally:
        restart.cancel()
        services.close()


def test_rows_the_inbound_processor_claimed_before_an_outage_are_processed_when_it_returns(
        cluster: Cluster, tmp_path: Path) -> None:
    """Not left to wait out their lease (the clock is frozen: they would wait for ever), and
    not counted as a failed attempt of theirs."""
    clock = FrozenClock()
    services, _key, domain = on_cluster(cluster, tmp_path, clock, hostname="mx.mailhaven.test")
    raw = b"From: Ann <ann@sender.test>\r\nSubject: Hi\r\n\r\nHello\r\n"
    with services.db.transaction() as session:
        receiver = intake.receiver(session, domain.name, require_verified=False)
        assert receiver is not None
        intake.store(session, services.vault, intake.Received(
            receiver, ["support@mg.acme.test"], "ann@sender.test", raw, intake.Head.of(raw),
            Verdicts()), clock.now())
    restart = threading.Timer(2.0, cluster.start)

    class OutageAfterClaiming(InboundProcessor):
        def claim(self) -> tuple[Lease, list[int]]:
            claimed = super().claim()
            if claimed[1]:
                cluster.stop()  # the rows are ours; processing them meets no database
                restart.start()
            return claimed

    def processed() -> bool:
        with services.db.sessions() as session:
            return [(r.status, r.attempts) for r in session.scalars(
                select(InboundMessage))] == [(PROCESSED, 1)]

    try:
        run_loop(run_until(OutageAfterClaiming(services),
                            lambda: not restart.is_alive() and processed()))
        assert processed()
    finally:
        restart.cancel()
        services.close()


def _statuses(services: Services) -> list[str]:
    with services.db.sessions() as session:
        return [d.status for d in session.scalars(select(WebhookDelivery))]
