"""`events` imports none of its consumers: statistics and webhooks hear of recorded events
through the sinks the entry points subscribe (`mailhaven.wiring`). Each test forgets the
sinks the tests' set-up subscribed, so only the entry point under test can bring them back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from mailhaven import server
from mailhaven.events import service as events
from mailhaven.services import Services
from mailhaven.stats.models import StatCount
from mailhaven.webhooks.models import WebhookDelivery
from mailhaven.wiring import wire
from tests.support import LiveServer, Sink


@pytest.fixture
def unwired() -> Iterator[None]:
    events.unsubscribe_all()
    try:
        yield
    finally:
        wire()


def _counted(services: Services, event: str) -> int:
    with services.db.sessions() as session:
        return session.scalar(select(func.coalesce(func.sum(StatCount.count), 0)).where(
            StatCount.event == event, StatCount.tag == "")) or 0


def _webhook_posts(services: Services, webhook: str) -> int:
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.webhook == webhook)) or 0


def _send(client, domain: str) -> None:  # type: ignore[no-untyped-def]
    for kind in ("accepted", "delivered"):
        assert client.post(f"/v3/domains/{domain}/webhooks",
                           data={"id": kind, "url": "http://127.0.0.1:9/hooks"}).status_code == 200
    reply = client.post(f"/v3/{domain}/messages", data={
        "from": "Acme <news@mg.acme.test>", "to": "ann@example.org", "subject": "Hello",
        "text": "Hi Ann"})
    assert reply.status_code == 200, reply.text


def test_without_sinks_nothing_is_counted_or_posted(unwired, services, account,
                                                    domain) -> None:
    """The sinks are the only way: an event recorded with none subscribed counts nothing."""
    with LiveServer(services) as live, live.client(account[1]) as client:
        events.unsubscribe_all()  # what the app wired, gone again
        _send(client, domain)
    assert _counted(services, "accepted") == 0
    assert _webhook_posts(services, "accepted") == 0


def test_the_api_wires_statistics_and_webhooks(unwired, services, account, domain) -> None:
    assert events.subscribed() == []
    with LiveServer(services) as live, live.client(account[1]) as client:  # create_app
        _send(client, domain)
    assert _counted(services, "accepted") == 1
    assert _webhook_posts(services, "accepted") == 1


def test_the_worker_process_wires_statistics_and_webhooks(services, account, domain,
                                                          unwired) -> None:
    """`mailhaven worker` (server.run_worker), started with no sinks subscribed: the
    `delivered` event it records is counted and queued for its webhook."""
    with LiveServer(services) as live, live.client(account[1]) as client:
        _send(client, domain)
    events.unsubscribe_all()  # the API's wiring, gone: only the worker's may count

    with Sink() as sink:
        async def run() -> None:
            worker = asyncio.create_task(server.run_worker(
                services.settings.with_(relayhost=sink.address), concurrency=2))
            try:
                for _ in range(600):
                    if await asyncio.to_thread(_counted, services, "delivered"):
                        break
                    await asyncio.sleep(0.05)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # as an operator stops it
                await worker

        asyncio.run(run())
    assert len(sink.received) == 1
    assert _counted(services, "delivered") == 1
    assert _webhook_posts(services, "delivered") == 1
