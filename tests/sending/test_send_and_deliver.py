"""The whole spine once: an HTTP send reaches a real SMTP sink, and events say so."""

from __future__ import annotations

import asyncio

from mailhaven.delivery.worker import DeliveryWorker
from tests.support import Sink, deliver_due, with_relay


def test_a_sent_message_is_delivered_and_reported(api, services, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": "Acme <news@mg.acme.test>", "to": "Ann <ann@example.org>",
        "subject": "Hello", "text": "Hi Ann",
    })
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"] == "Queued. Thank you."
    message_id = reply.json()["id"]
    assert message_id.startswith("<") and message_id.endswith(">")

    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 1
    got = sink.received[0]
    assert got.rcpt_tos == ["ann@example.org"]
    assert got.message["Subject"] == "Hello"
    assert got.message["Message-ID"] == message_id
    assert got.mail_from.startswith("bounce+") and got.mail_from.endswith("@mg.acme.test")

    events = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
    assert [e["event"] for e in events] == ["accepted", "delivered"]
    assert events[1]["recipient"] == "ann@example.org"
    assert events[1]["delivery-status"]["code"] == 250
    assert events[1]["message"]["headers"]["message-id"] == message_id.strip("<>")


def test_a_send_wakes_the_idle_worker_of_its_process(api, services, domain) -> None:
    """`serve` runs the API and a worker together: an accepted message starts its delivery
    at once, not at the worker's next poll (here an hour away)."""
    with Sink() as sink:
        async def run() -> None:
            worker = DeliveryWorker(with_relay(services, sink), concurrency=5)
            worker.doorbell = services.delivery_bell  # with_relay copied the services
            worker.idle_seconds = 3600.0
            polled = asyncio.Event()
            run_once = worker.run_once

            async def noting_rounds() -> int:
                handled = await run_once()
                polled.set()
                return handled

            worker.run_once = noting_rounds  # type: ignore[method-assign]
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.wait_for(polled.wait(), 30)  # it found nothing and went to sleep
            reply = await asyncio.to_thread(api.post, f"/v3/{domain}/messages", data={
                "from": "Acme <news@mg.acme.test>", "to": "ann@example.org",
                "subject": "Hello", "text": "Hi Ann"})
            assert reply.status_code == 200, reply.text
            async with asyncio.timeout(30):
                while not sink.received:
                    await asyncio.sleep(0.01)
            stop.set()
            await task

        asyncio.run(run())
    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"]]
