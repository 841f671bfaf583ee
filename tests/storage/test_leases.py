"""The leased-queue base (storage.leases), on the webhook queue, its second user: concurrent
claimers never share a row, and only the claim that holds a row may settle it."""

from __future__ import annotations

import threading

from sqlalchemy import select

from mailhaven.storage.leases import Lease
from mailhaven.webhooks.models import PENDING, SENT, WebhookDelivery
from mailhaven.webhooks.sender import QUEUE
from tests.support import another_tenant

ROWS = 40


def _pending_posts(api, services, live, domain: str) -> None:  # type: ignore[no-untyped-def]
    """ROWS pending webhook POSTs, due now, of two accounts."""
    _one_post(api, domain)
    with another_tenant(services, live) as bee:
        _one_post(bee, "mg.bee.test")
    with services.db.transaction() as session:
        rows = list(session.scalars(select(WebhookDelivery)))
        assert len(rows) == 2
        session.execute(WebhookDelivery.__table__.insert(), [
            {"account_id": row.account_id, "domain_id": row.domain_id, "event_id": row.event_id,
             "webhook": "accepted", "url": row.url, "next_attempt_at": services.clock.now(),
             "created_at": row.created_at, "updated_at": row.updated_at, "status": PENDING,
             "attempts": 0, "attempt_log": "[]"}
            for n in range(ROWS // 2 - 1) for row in rows])


def _one_post(client, domain: str) -> None:  # type: ignore[no-untyped-def]
    assert client.post(f"/v3/domains/{domain}/webhooks", data={
        "id": "accepted", "url": "http://127.0.0.1:9/hooks"}).status_code == 200
    assert client.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi",
        "text": "Hi"}).status_code == 200


def _claim(services, owner: str, limit: int = 5) -> tuple[Lease, list[int]]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return QUEUE.claim(session, owner=owner, now=services.clock.now(), limit=limit,
                           lease_seconds=60)


def _settle(services, ids: list[int], lease: Lease) -> set[int]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return QUEUE.settle(session, ids, lease, services.clock.now(), status=SENT)


def _status(services) -> dict[int, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return {r.id: (r.status, r.lease_owner) for r in session.scalars(select(WebhookDelivery))}


def test_two_claimers_never_get_the_same_row(api, services, live, domain) -> None:
    _pending_posts(api, services, live, domain)
    claimed: dict[str, list[int]] = {}
    start, first_taken = threading.Barrier(2), threading.Barrier(2)

    def claimer(owner: str) -> None:
        start.wait()
        got = list(_claim(services, owner, limit=3)[1])
        # Both have taken a first share before either goes on (SQLite runs one writer at a
        # time, and a thread may otherwise drain the queue before the other starts).
        first_taken.wait(timeout=30)
        while (ids := _claim(services, owner, limit=3)[1]):
            got.extend(ids)
        claimed[owner] = got

    threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    ids = claimed["c0"] + claimed["c1"]
    assert len(ids) == len(set(ids)) == ROWS
    assert claimed["c0"] and claimed["c1"]  # both took part
    owners = _status(services)
    assert all(owners[i] == (PENDING, "c0") for i in claimed["c0"])
    assert all(owners[i] == (PENDING, "c1") for i in claimed["c1"])


def test_a_settle_with_a_stale_lease_is_refused_even_from_the_same_owner(
        api, services, live, domain, clock) -> None:
    _pending_posts(api, services, live, domain)
    first, ids = _claim(services, "sender-a", limit=ROWS)
    clock.advance(60)  # the lease ran out; the same sender claims the rows again
    second, again = _claim(services, "sender-a", limit=ROWS)
    assert sorted(again) == sorted(ids)
    assert second.owner == first.owner and second.until > first.until

    assert _settle(services, ids, first) == set()  # the first claim has no say any more
    assert all(_status(services)[i] == (PENDING, "sender-a") for i in ids)
    assert _settle(services, ids, second) == set(ids)
    assert all(_status(services)[i] == (SENT, None) for i in ids)
    assert _settle(services, ids, second) == set()  # settled once only


def test_a_settle_after_another_claimer_took_the_row_is_refused(
        api, services, live, domain, clock) -> None:
    _pending_posts(api, services, live, domain)
    lost, ids = _claim(services, "sender-a", limit=ROWS)
    clock.advance(60)
    held, taken = _claim(services, "sender-b", limit=2)
    assert set(taken) <= set(ids)

    assert _settle(services, ids, lost) == set(ids) - set(taken)
    assert all(_status(services)[i] == (PENDING, "sender-b") for i in taken)
    assert _settle(services, taken, held) == set(taken)
