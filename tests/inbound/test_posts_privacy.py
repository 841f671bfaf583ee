"""Route POST records are personal data (the sealed recipient and URL, what was posted
when): finished ones go after their retention period, and erasing the person who sent
the mail removes the POSTs made of it, in that account only."""

from __future__ import annotations

from sqlalchemy import func, select

from mailhaven.inbound import service as intake
from mailhaven.inbound.auth import Verdicts
from mailhaven.inbound.models import RoutePost
from mailhaven.inbound.posts import erase_for_messages
from mailhaven.privacy.erasure import erase_recipient
from mailhaven.retention import service as retention
from mailhaven.routes.expressions import RouteAction
from tests.inbound.test_actions_support import (
    a_message,
    run_actions,
    send_route_posts,
    store_inbound,
)
from tests.support import WebhookReceiver

RECIPIENT = "support@mg.acme.test"
ROUTE = "5f1d2c3b4a5968778695a4b3"
DAY = 86_400.0


def receive(services, domain: str, mail_from: str) -> str:  # type: ignore[no-untyped-def]
    """A message from `mail_from` (envelope and From) as the MX keeps it, its queue rows
    too; its key."""
    raw = f"X-Envelope-From: <{mail_from}>\r\n".encode() + a_message().replace(
        b"ann@shop.example.org", mail_from.encode())
    with services.db.transaction() as session:
        receiver = intake.receiver(
            session, domain, require_verified=services.settings.require_verified_domains)
        assert receiver is not None
        return intake.store(session, services.vault, intake.Received(
            receiver, [RECIPIENT], mail_from, raw, intake.Head.of(raw), Verdicts()),
            services.clock.now())


def forward(services, key: str, url: str) -> None:  # type: ignore[no-untyped-def]
    run_actions(services, key, RECIPIENT, [RouteAction(ROUTE, "forward", url)])


def statuses(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return sorted(session.scalars(select(RoutePost.status)))


def test_finished_route_posts_go_after_30_days_pending_ones_stay(
        services, clock, account, domain, api) -> None:
    policies = api.get("/v1/privacy/retention").json()["policies"]
    assert {p["category"]: p["days"] for p in policies}["route_posts"] == 30
    with WebhookReceiver(lambda n: 200 if n == 1 else 500) as receiver:
        forward(services, store_inbound(services, account[0], domain, a_message(),
                                        to=[RECIPIENT]), receiver.url)
        send_route_posts(services)  # sent
        clock.advance(29 * DAY)
        forward(services, store_inbound(services, account[0], domain, a_message(),
                                        to=[RECIPIENT]), receiver.url)
        send_route_posts(services)  # failed once: pending, retried later
    assert statuses(services) == ["pending", "sent"]
    assert retention.run(services.db, services.clock)["route_posts"] == 0
    clock.advance(2 * DAY)
    assert retention.run(services.db, services.clock)["route_posts"] == 1
    assert statuses(services) == ["pending"]


def test_erasing_the_sender_removes_the_posts_of_their_mail_not_anyone_elses(
        services, account, second_account, domain, api) -> None:
    theirs = receive(services, domain, "ann@shop.example.org")
    other = receive(services, domain, "carol@elsewhere.example.net")
    with WebhookReceiver() as receiver:
        forward(services, theirs, receiver.url)
        forward(services, other, receiver.url)
        assert send_route_posts(services) == 2
    with services.db.transaction() as session:  # another account's erasure touches none
        assert erase_for_messages(session, second_account.account_id, [theirs, other]) == 0
    with services.db.transaction() as session:
        erase_recipient(session, services.vault, account[0], "ann@shop.example.org",
                        now=services.clock.now(), data_dir=services.settings.data_dir)
    with services.db.sessions() as session:
        left = session.execute(select(RoutePost.storage_key, func.count())
                               .group_by(RoutePost.storage_key)).all()
    assert [tuple(row) for row in left] == [(other, 1)]
    item, = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
    assert item["storage-key"] == other
