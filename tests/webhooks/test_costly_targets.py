"""Webhook targets that cost the sender: a gzip bomb for an answer, an answer dripped a byte at
a time, and one account's backlog of due POSTs. None of them may delay another account's."""

from __future__ import annotations

import time
import tracemalloc
import zlib
from collections.abc import Callable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler
from threading import Thread

import pytest
from sqlalchemy import select

from mailhaven.webhooks.models import WebhookDelivery
from mailhaven.webhooks.sender import RETRY_DELAYS
from tests.support import Listener, WebhookReceiver, another_tenant, send_webhooks

BOMB_MIB = 96  # what the answer inflates to; about 96 KiB on the wire
DRIP_EVERY, DRIP_FOR = 0.25, 8.0  # well inside httpx's 10 s per read, past the 2 s deadline
BACKLOG = 60  # three claims' worth, all due before the other account's one POST


def _gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(BOMB_MIB)) + packer.flush()


class Endpoint:
    """A customer's endpoint on loopback that answers every POST with `answer(handler)`."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                endpoint.requests += 1
                with suppress(OSError):  # the sender hung up: what it should do
                    answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = Listener(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Endpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _send(client, domain: str) -> None:  # type: ignore[no-untyped-def]
    reply = client.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi", "text": "Hi"})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_gzip_bomb_answer_is_never_inflated(api, services, domain) -> None:
    bomb = _gzip_bomb()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    with Endpoint(answer) as endpoint:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted", "url": endpoint.url})
        _send(api, domain)
        tracemalloc.start()
        try:
            assert send_webhooks(services) == 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 50 << 20  # before the fix: the whole answer, inflated, and a copy of it
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "sent" and record["attempts"][0]["status"] == 200


def test_an_answer_dripped_slowly_is_cut_at_the_deadline(api, services, live, clock,
                                                         domain) -> None:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        until = time.monotonic() + DRIP_FOR
        while time.monotonic() < until:  # a header byte at a time: each read is in time
            handler.wfile.write(b"a")
            time.sleep(DRIP_EVERY)
        handler.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")

    with Endpoint(answer) as drip, WebhookReceiver() as receiver, \
            another_tenant(services, live) as b_client:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted", "url": drip.url})
        assert b_client.post("/v1/webhooks", data={"url": receiver.url,
                                                   "event_types": "accepted"}).status_code == 200
        _send(api, domain)
        _send(b_client, "mg.bee.test")

        started = time.monotonic()
        assert send_webhooks(services, claims=1, timeout=2.0) == 2  # both in one claim
        assert time.monotonic() - started < 5  # before the fix: the whole drip, then "sent"
        assert len(receiver.received) == 1 and drip.requests == 1
        clock.advance(RETRY_DELAYS[0] - 1)
        assert send_webhooks(services, timeout=2.0) == 0  # retried on the usual schedule

    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "pending"
    assert record["attempts"][0]["status"] is None
    assert record["attempts"][0]["error"].startswith("timeout")


def test_one_account_s_backlog_does_not_keep_another_out_of_a_claim(
        api, services, live, clock, domain) -> None:
    with WebhookReceiver() as a_receiver, WebhookReceiver() as b_receiver, \
            another_tenant(services, live) as b_client:
        api.post(f"/v3/domains/{domain}/webhooks",
                 data={"id": "accepted", "url": a_receiver.url})
        _send(api, domain)
        with services.db.transaction() as session:  # A's backlog, all due before B's POST
            [row] = session.scalars(select(WebhookDelivery))
            session.execute(WebhookDelivery.__table__.insert(), [
                {"account_id": row.account_id, "domain_id": row.domain_id,
                 "event_id": row.event_id, "webhook": "accepted", "url": row.url,
                 "next_attempt_at": clock.now() - 60 + n, "created_at": row.created_at,
                 "updated_at": row.updated_at, "status": "pending", "attempts": 0,
                 "attempt_log": "[]"} for n in range(BACKLOG - 1)])
        assert b_client.post("/v1/webhooks", data={"url": b_receiver.url,
                                                   "event_types": "accepted"}).status_code == 200
        _send(b_client, "mg.bee.test")

        assert send_webhooks(services, claims=1, concurrency=20) == 20
        assert len(b_receiver.received) == 1  # before the fix: A's 20 oldest, B's next time
        assert len(a_receiver.received) == 19  # B needed one slot: A has the rest
        assert send_webhooks(services) == BACKLOG - 19
    assert len(a_receiver.received) == BACKLOG
