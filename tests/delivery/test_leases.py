"""Claims are leases: a dead worker's copies come back, and a late worker can't settle."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email.utils import format_datetime

from mailhaven.delivery import queue
from mailhaven.delivery.models import DELIVERED, QUEUED
from tests.delivery.sinks import outcomes, queue_rows, send
from tests.support import Sink, deliver_due


def claim(services, owner: str, limit: int = 10) -> list[queue.Job]:  # type: ignore[no-untyped-def]
    return queue.claim(services.db, services.vault, owner=owner, now=services.clock.now(),
                       limit=limit, lease_seconds=services.settings.lease_seconds)


def settle_delivered(services, job: queue.Job) -> dict | None:  # type: ignore[no-untyped-def]
    status = {"code": 250, "message": "OK", "attempt-no": job.attempts, "mx-host": "mx"}
    return queue.settle(services.db, services.vault, job, now=services.clock.now(),
                        status=DELIVERED, next_attempt_at=None, event="delivered",
                        extra={"delivery-status": status})


def test_an_expired_lease_goes_to_another_worker_and_the_first_cannot_settle(
        api, services, domain, clock) -> None:
    send(api, domain)
    lease = services.settings.lease_seconds

    [first] = claim(services, "worker-a")
    assert (first.owner, first.attempts, first.email) == ("worker-a", 1, "ann@example.org")
    clock.advance(lease - 1)
    assert claim(services, "worker-b") == []  # the lease still holds

    clock.advance(2)
    [second] = claim(services, "worker-b")
    assert (second.owner, second.attempts) == ("worker-b", 2)
    assert second.delivery_id == first.delivery_id
    [row] = queue_rows(services)
    assert (row.status, row.lease_owner) == (QUEUED, "worker-b")

    assert settle_delivered(services, first) is None  # lost its lease: no say any more
    [row] = queue_rows(services)
    assert (row.status, row.lease_owner) == (QUEUED, "worker-b")
    assert outcomes(api, domain) == []

    recorded = settle_delivered(services, second)
    assert recorded is not None and recorded["event"] == "delivered"
    assert settle_delivered(services, first) is None  # nor after the other one settled
    [row] = queue_rows(services)
    assert (row.status, row.lease_owner) == (DELIVERED, None)
    assert [e["event"] for e in outcomes(api, domain)] == ["delivered"]


def test_a_copy_claimed_by_a_crashed_worker_is_delivered_after_the_lease(
        api, services, domain, clock) -> None:
    send(api, domain)
    claim(services, "worker-that-died")
    with Sink() as sink:
        deliver_due(services, sink)
        assert sink.received == []  # still leased

        clock.advance(services.settings.lease_seconds)
        deliver_due(services, sink)
    assert len(sink.received) == 1
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["attempt-no"] == 2


def test_concurrent_claims_never_hand_out_a_copy_twice(api, services, domain) -> None:
    send(api, domain, {"to": [f"user{i}@example.org" for i in range(24)]})
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(owner: str) -> None:
        start.wait()
        got: list[int] = []
        while jobs := claim(services, owner, limit=3):
            got.extend(j.delivery_id for j in jobs)
        claimed[owner] = got

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    ids = [i for got in claimed.values() for i in got]
    assert len(claimed) == 4
    assert sorted(ids) == sorted({r.id for r in queue_rows(services)})
    assert len(ids) == len(set(ids)) == 24


def test_a_scheduled_message_is_not_claimed_before_its_time(
        api, services, domain, clock) -> None:
    later = format_datetime(datetime.fromtimestamp(clock.now() + 3600, UTC))
    send(api, domain, {"o:deliverytime": later})
    with Sink() as sink:
        clock.advance(3599)
        deliver_due(services, sink)
        assert sink.received == []
        clock.advance(1)
        deliver_due(services, sink)
    assert len(sink.received) == 1


def test_a_worker_s_stale_claim_cannot_settle_over_its_own_newer_claim(
        api, services, domain, clock) -> None:
    """The fence is the claim, not the worker: an attempt whose lease ran out, and whose copy
    the same worker claimed again, has no say over the new attempt."""
    send(api, domain)
    [stale] = claim(services, "worker-a")
    clock.advance(services.settings.lease_seconds)
    [fresh] = claim(services, "worker-a")
    assert (fresh.delivery_id, fresh.owner, fresh.attempts) == (stale.delivery_id, "worker-a", 2)

    assert settle_delivered(services, stale) is None
    assert outcomes(api, domain) == []
    recorded = settle_delivered(services, fresh)
    assert recorded is not None and recorded["delivery-status"]["attempt-no"] == 2
