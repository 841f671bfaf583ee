"""forward("https://…") POSTs, made by RoutePostSender to a real HTTP receiver on
loopback: signed with the account's key, retried on Mailgun's schedule, stopped by a 406,
given up after about 8 hours, never sent to a private address, and never sent once the
recipient is erased."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from urllib.parse import parse_qs, unquote_to_bytes

from mailhaven.inbound.models import RoutePost
from mailhaven.privacy.erasure import erase_recipient
from mailhaven.routes.expressions import RouteAction
from mailhaven.webhooks.sender import RETRY_DELAYS
from mailhaven.webhooks.service import signing_key
from tests.inbound.test_actions_support import (
    a_message,
    run_actions,
    send_route_posts,
    store_inbound,
)
from tests.support import WebhookReceiver

RECIPIENT = "support+77@mg.acme.test"


def forward(url: str) -> list[RouteAction]:
    return [RouteAction("5f1d2c3b4a5968778695a4b3", "forward", url)]


def posts(api, domain: str) -> list[dict]:
    reply = api.get(f"/v1/admin/domains/{domain}/route_posts")
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def test_a_forward_posts_mailguns_fields_signed_with_the_accounts_key(
        services, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url + "/support+77"))
        assert send_route_posts(services) == 1
    hook, = receiver.received
    assert hook.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(hook.body.decode(), keep_blank_values=True).items()}
    assert form["recipient"] == RECIPIENT
    assert form["sender"] == "bounces-77@shop.example.org"  # MAIL FROM, not the From
    assert form["from"] == "Ann Buyer <ann@shop.example.org>"
    assert form["subject"] == "Order 77" and form["body-plain"] == "Where is my parcel?\n"
    assert form["Message-Id"] == "<order-77@shop.example.org>"
    with services.db.transaction() as session:
        secret = signing_key(session, services.vault, account[0])
    assert form["signature"] == hmac.new(secret.encode(), (form["timestamp"] + form["token"])
                                         .encode(), hashlib.sha256).hexdigest()
    item, = posts(api, domain)
    assert item["status"] == "sent" and item["recipient"] == RECIPIENT
    assert [a["status"] for a in item["attempts"]] == [200]


def test_a_failed_post_is_retried_on_the_schedule_and_a_406_stops_it(
        services, clock, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    answers = {1: 500, 2: 503, 3: 406}
    with WebhookReceiver(lambda n: answers.get(n, 200)) as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url))
        send_route_posts(services)
        assert send_route_posts(services) == 0  # not due again before its delay
        clock.advance(RETRY_DELAYS[0])
        send_route_posts(services)
        clock.advance(RETRY_DELAYS[1])
        send_route_posts(services)
        clock.advance(86400)
        assert send_route_posts(services) == 0  # 406: never again
    assert len(receiver.received) == 3
    item, = posts(api, domain)
    assert item["status"] == "refused"
    assert [a["status"] for a in item["attempts"]] == [500, 503, 406]


def test_a_post_that_keeps_failing_is_given_up_after_about_eight_hours(
        services, clock, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver(lambda _n: 500) as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url))
        send_route_posts(services)
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            send_route_posts(services)
        clock.advance(86400)
        assert send_route_posts(services) == 0
    assert len(receiver.received) == len(RETRY_DELAYS) + 1
    assert sum(RETRY_DELAYS) / 3600 > 7.5
    item, = posts(api, domain)
    assert item["status"] == "gave-up" and len(item["attempts"]) == len(RETRY_DELAYS) + 1


def test_a_private_target_is_refused_at_once(services, account, domain, api) -> None:
    strict = dataclasses.replace(
        services, settings=services.settings.with_(webhook_allow_private=False))
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url))
        send_route_posts(strict)
    assert receiver.received == []
    item, = posts(api, domain)
    assert item["status"] == "gave-up"
    assert item["attempts"][0]["error"].startswith("refused:")


def test_erasing_the_recipient_stops_a_pending_post(services, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url))
        with services.db.transaction() as session:
            erase_recipient(session, services.vault, account[0], RECIPIENT,
                            now=services.clock.now(), data_dir=services.settings.data_dir)
        send_route_posts(services)
    assert receiver.received == []
    with services.db.sessions() as session:
        row, = session.query(RoutePost).all()
        assert row.status == "cancelled"
    assert posts(api, domain) == []  # nothing of the erased recipient is shown


def test_the_log_names_the_host_only_and_another_account_sees_nothing(
        services, account, domain, api, second_api, caplog) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver() as receiver, caplog.at_level(logging.INFO,
                                                        "mailhaven.inbound.posts"):
        run_actions(services, key, RECIPIENT, forward(receiver.url + "/to/support+77"))
        send_route_posts(services)
    line = json.loads(next(r.getMessage() for r in caplog.records
                           if '"route-post"' in r.getMessage()))
    assert line["host"] == "127.0.0.1" and line["outcome"] == "sent"
    assert "support+77" not in caplog.text
    assert second_api.get(f"/v1/admin/domains/{domain}/route_posts").status_code == 404
    assert posts(api, domain)[0]["status"] == "sent"


def test_a_mime_forward_carries_an_8bit_message_byte_for_byte(
        services, account, domain) -> None:
    raw = (b"From: Ann Buyer <ann@shop.example.org>\r\nSubject: 8-bit\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 cr\xe8me, 5 \xa4\r\n")
    key = store_inbound(services, account[0], domain, raw, to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT, forward(receiver.url + "/inbound_mime/"))
        assert send_route_posts(services) == 1
    hook, = receiver.received
    assert hook.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(pair.split(b"=", 1) for pair in hook.body.split(b"&"))
    body_mime = unquote_to_bytes(form[b"body-mime"].replace(b"+", b" "))
    assert body_mime.endswith(raw)  # after our trace fields, the message as it came
    assert body_mime.startswith(b"Received: ")
    assert unquote_to_bytes(form[b"subject"].replace(b"+", b" ")) == b"8-bit"
