"""A webhook receiver and a route's forward-to-URL receiver that are down (the connection
refused) for hours: on an injected clock, each POST is tried again exactly on the documented
schedule (10m, 10m, 15m, 30m, 1h, 2h, 4h), given up after the last try, and the user sees
it: the item's status and every attempt in the API, and a log line saying it was given up.
A receiver back within those hours gets the POST at its next scheduled try."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from mailhaven.routes.expressions import RouteAction
from mailhaven.webhooks.poster import RETRY_DELAYS
from tests.inbound.test_actions_support import (
    a_message,
    run_actions,
    send_route_posts,
    store_inbound,
)
from tests.support import Listener, free_port, send_webhooks

RECIPIENT = "support@mg.acme.test"
SCHEDULE = list(itertools.accumulate(RETRY_DELAYS, initial=0))  # seconds after the first try
LOGGERS = {"webhook": "mailhaven.webhooks", "route": "mailhaven.inbound.posts"}


@contextmanager
def receiver_on(port: int) -> Iterator[list[bytes]]:
    """The receiver back up on `port`: answers 200, keeps every body."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = Listener(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def queue_one(kind: str, api, services, account, domain: str, url: str,  # type: ignore[no-untyped-def]
              ) -> tuple[Callable[[], int], Callable[[], dict]]:
    """One POST queued for `url`: a webhook of the accepted event, or a route's forward.
    Returns (run the sender once: POSTs made, the item as the API shows it)."""
    if kind == "webhook":
        assert api.post(f"/v3/domains/{domain}/webhooks",
                        data={"id": "accepted", "url": url}).status_code == 200
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi",
            "text": "Hello"}).status_code == 200
        listing = f"/v1/admin/domains/{domain}/webhook_deliveries"
        run = lambda: send_webhooks(services)  # noqa: E731
    else:
        key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
        run_actions(services, key, RECIPIENT,
                    [RouteAction("5f1d2c3b4a5968778695a4b3", "forward", url)])
        listing = f"/v1/admin/domains/{domain}/route_posts"
        run = lambda: send_route_posts(services)  # noqa: E731

    def item() -> dict:
        reply = api.get(listing)
        assert reply.status_code == 200, reply.text
        [only] = reply.json()["items"]
        return only
    return run, item


@pytest.mark.parametrize("kind", ["webhook", "route"])
def test_a_receiver_down_for_hours_is_given_up_on_schedule_and_it_shows(
        kind, api, services, account, domain, clock, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGERS[kind])
    run, item = queue_one(kind, api, services, account, domain,
                          f"http://127.0.0.1:{free_port()}/hooks")  # nothing listens there
    started = clock.now()
    assert run() == 1
    for delay in RETRY_DELAYS:
        assert item()["status"] == "pending"
        assert item()["next-attempt-at"] == pytest.approx(clock.now() + delay)
        clock.advance(delay - 1)
        assert run() == 0, "tried before its time"
        clock.advance(1)
        assert run() == 1, "not tried on time"
    clock.advance(7 * 24 * 3600)
    assert run() == 0, "tried after it was given up"

    shown = item()
    assert shown["status"] == "gave-up" and shown["next-attempt-at"] is None
    assert [a["at"] - started for a in shown["attempts"]] == pytest.approx(SCHEDULE)
    assert all(a["status"] is None and "ConnectError" in a["error"]
               for a in shown["attempts"])
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == LOGGERS[kind] and r.getMessage().startswith("{")]
    assert [line["outcome"] for line in lines] == ["pending"] * len(RETRY_DELAYS) + ["gave-up"]


@pytest.mark.parametrize("kind", ["webhook", "route"])
def test_a_receiver_back_within_the_schedule_gets_the_post_at_the_next_try(
        kind, api, services, account, domain, clock) -> None:
    port = free_port()
    run, item = queue_one(kind, api, services, account, domain,
                          f"http://127.0.0.1:{port}/hooks")
    started = clock.now()
    run()
    while clock.now() - started < 3 * 3600:  # down for three hours
        clock.advance(item()["next-attempt-at"] - clock.now())
        run()
    with receiver_on(port) as received:
        clock.advance(item()["next-attempt-at"] - clock.now())
        assert run() == 1
        clock.advance(7 * 24 * 3600)
        assert run() == 0
    assert len(received) == 1
    shown = item()
    assert shown["status"] == "sent"
    tried = [a["at"] - started for a in shown["attempts"]]
    assert tried == pytest.approx(SCHEDULE[:len(tried)])
    assert [a["status"] for a in shown["attempts"]] == [None] * (len(tried) - 1) + [200]
