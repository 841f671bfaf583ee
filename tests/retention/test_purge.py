"""The retention purge on a moving clock: what expires goes, what doesn't stays, stats hold."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain, owned_domain
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.retention import service
from mailhaven.retention.categories import DAY
from mailhaven.retention.runner import RetentionRunner
from mailhaven.stats import service as stats
from mailhaven.storage import periodic
from mailhaven.tracking import links
from mailhaven.vault import VaultKey
from tests.delivery.sinks import send
from tests.support import Sink, SinkBehaviour, deliver_due


def _events(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    reply = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": "300"})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def _totals(services, domain: str, start: float, tag: str = "") -> list[dict]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        domain_id = owned_domain(session, *_owner(session, domain)).id
        return stats.totals(session, domain_id, events=list(stats.EVENTS), start=start,
                            end=services.clock.now(), resolution="day", tag=tag)


def _owner(session, domain: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    from mailhaven.domains.models import Domain
    return session.scalar(select(Domain.account_id).where(Domain.name == domain)), domain


def _stored(api, storage_key: str, domain: str) -> int:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/domains/{domain}/messages/{storage_key}").status_code


def _storage_key(services, message_id: str) -> str:  # type: ignore[no-untyped-def]
    """Found as the Events API finds it: by the Message-ID's blind index (in its account)."""
    with services.db.sessions() as session:
        accounts = session.scalars(select(Message.account_id).distinct()).all()
        return session.scalar(select(Event.storage_key).where(Event.message_id_index.in_(
            [services.vault.message_index(a, message_id) for a in accounts])).limit(1))


def _purge(services) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return service.run(services.db, services.clock, batch=2)  # small batches: several rounds


def test_events_past_their_period_go_newer_ones_stay_and_stats_do_not_change(
        api, services, domain, clock) -> None:
    start = clock.now() - DAY
    with Sink() as sink:
        old = send(api, domain, {"to": "ann@example.org, bob@example.org", "o:tag": "news"})
        deliver_due(services, sink)
        clock.advance(20 * DAY)
        new = send(api, domain, {"to": "ann@example.org", "o:tag": "news"})
        deliver_due(services, sink)
    clock.advance(11 * DAY)  # the first message's events are 31 days old, the second's 11
    before = _events(api, domain)
    assert [e["message"]["headers"]["message-id"] for e in before].count(old) == 4
    totals, tagged = _totals(services, domain, start), _totals(services, domain, start, "news")

    runner = RetentionRunner(services)
    assert asyncio.run(runner.run_once()) == 0  # it purged, and sleeps until the next hour
    run = periodic.last_run(services.db, RetentionRunner.name)
    assert run is not None and (run.last_started_at, run.last_finished_at) == (clock.now(),
                                                                                clock.now())

    after = _events(api, domain)
    assert [e["id"] for e in after] == [e["id"] for e in before
                                        if e["message"]["headers"]["message-id"] == new]
    assert len(after) == 2
    # The counters were added to when each event was recorded; the purge leaves them be.
    assert _totals(services, domain, start) == totals
    assert _totals(services, domain, start, "news") == tagged
    assert sum(p["delivered"]["total"] for p in totals) == 3
    assert api.get(f"/v3/{domain}/tags/news").json()["tag"] == "news"


@pytest.fixture
def globex(services, live):  # type: ignore[no-untyped-def]
    """A second account with its own domain, and a client holding its key."""
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name="Globex",
                                email="ops@globex.test", clock=services.clock)
        create_domain(session, services.vault, issued.account_id,
                      {"name": "mg.globex.test", "dkim_key_size": "1024"}, services.clock)
    with live.client(issued.api_key) as client:
        yield client


def test_an_accounts_own_periods_are_honoured_and_no_other_accounts_data_is_touched(
        api, globex, services, domain, clock) -> None:
    assert globex.put("/v1/privacy/retention", json={"events": 5}).status_code == 200
    assert api.put("/v1/privacy/retention", json={"message_bodies": 10}).status_code == 200
    with Sink() as sink:
        mine = _storage_key(services, send(api, domain))
        theirs = _storage_key(services, send(globex, "mg.globex.test"))
        deliver_due(services, sink)
    clock.advance(6 * DAY)

    counts = _purge(services)

    assert counts == {"events": 2, "message_bodies": 1, "webhook_deliveries": 0,
                      "requests": 0, "inbound_messages": 0, "route_posts": 0,
                      "contact_messages": 0}
    assert _events(globex, "mg.globex.test") == []  # its own 5 days
    assert [e["event"] for e in _events(api, domain)] == ["accepted", "delivered"]  # 30 days
    assert _stored(api, mine, domain) == 200  # its own 10 days
    assert _stored(globex, theirs, "mg.globex.test") == 404  # the default 3 days
    assert _purge(services) == dict.fromkeys(counts, 0)


def test_a_body_goes_three_days_after_its_last_copy_settles_never_while_one_is_queued(
        api, live, services, domain, clock) -> None:
    busy = SinkBehaviour(rcpt=lambda rcpt: "450 4.2.0 Mailbox busy" if "bob" in rcpt else None)
    with Sink(busy) as sink:
        waiting = _storage_key(services, send(api, domain, {"to": "ann@example.org, "
                                                                  "bob@example.org"}))
        done = _storage_key(services, send(api, domain, {"to": "carol@example.org"}))
        deliver_due(services, sink)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["ann@example.org",
                                                            "carol@example.org"]
    with services.db.sessions() as session:
        content_key = session.get(Message, done).content_key_id
    clock.advance(4 * DAY)
    assert _purge(services)["message_bodies"] == 1
    assert _stored(api, done, domain) == 404
    assert _stored(api, waiting, domain) == 200  # bob's copy is still queued
    with services.db.sessions() as session:
        purged = session.get(Message, done)
        assert purged.content_sealed is None and purged.content_key_id is None
        assert session.get(VaultKey, content_key) is None  # backups of the body: unreadable

    with Sink() as sink:
        deliver_due(services, sink)  # bob's retry goes through: the message's final state
    assert [r.rcpt_tos for r in sink.received] == [["bob@example.org"]]
    clock.advance(2 * DAY)
    assert _purge(services)["message_bodies"] == 0
    assert _stored(api, waiting, domain) == 200
    clock.advance(1 * DAY + 60)
    assert _purge(services)["message_bodies"] == 1
    assert _stored(api, waiting, domain) == 404

    # The events stay (their own period), and the recipient can still unsubscribe.
    [ann] = [e for e in _events(api, domain) if e["event"] == "delivered"
             and e["recipient"] == "ann@example.org"]
    assert ann["storage"]["key"] == waiting
    with services.db.sessions() as session:
        from mailhaven.delivery.models import Delivery
        copy = session.scalar(select(Delivery.id).where(Delivery.message_id == waiting)
                              .order_by(Delivery.id).limit(1))
    url = links.url(live.base_url, services.vault, links.Link("u", copy, "*"))
    clicked = api.post(httpx.URL(url).path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert clicked.status_code == 200
    assert api.get(f"/v3/{domain}/unsubscribes/ann%40example.org").status_code == 200
    [unsubscribed] = [e for e in _events(api, domain) if e["event"] == "unsubscribed"]
    assert unsubscribed["message"]["headers"]["message-id"] == ann["message"]["headers"][
        "message-id"]


def test_a_dry_run_counts_and_purges_nothing(api, services, domain, clock) -> None:
    with Sink() as sink:
        send(api, domain)
        deliver_due(services, sink)
    refused = api.post(f"/v3/{domain}/messages", data={"from": f"a@{domain}", "text": "x"})
    assert refused.status_code == 400  # a `rejected` event, sealed under a one-off key
    clock.advance(31 * DAY)
    counts = service.run(services.db, clock, dry_run=True)
    assert counts == {"events": 3, "message_bodies": 1, "webhook_deliveries": 0,
                      "requests": 0, "inbound_messages": 0, "route_posts": 0,
                      "contact_messages": 0}
    assert len(_events(api, domain)) == 3
    assert service.run(services.db, clock) == counts
    assert _events(api, domain) == []
    with services.db.sessions() as session:  # no key is left behind with nothing to open
        assert session.scalars(select(VaultKey).where(VaultKey.purpose == "content")).all() == []


def test_finished_webhook_deliveries_go_after_their_own_period(api, services, domain,
                                                               clock) -> None:
    from mailhaven.webhooks.models import WebhookDelivery
    from tests.support import WebhookReceiver, send_webhooks

    api.put("/v1/privacy/retention", json={"webhook_deliveries": 2})
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered",
                                                          "url": receiver.url})
        send(api, domain)
        deliver_due(services, sink)
        assert send_webhooks(services) == 1
    clock.advance(3 * DAY + 60)
    assert _purge(services) == {"events": 0, "message_bodies": 1, "webhook_deliveries": 1,
                               "requests": 0, "inbound_messages": 0, "route_posts": 0,
                               "contact_messages": 0}
    with services.db.sessions() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []
    assert len(_events(api, domain)) == 2
