"""Outcomes recorded together (group commit): each copy still settles as its own attempt
went, a lost lease or a bad outcome spoils nothing else, and a crash mid-batch loses no copy."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session

from mailhaven.delivery import queue
from mailhaven.delivery.models import DELIVERED, FAILED, QUEUED
from tests.delivery.sinks import outcomes, queue_rows, send
from tests.support import Sink, SinkBehaviour, deliver_due

PEOPLE = [f"user{i}@example.org" for i in range(12)]
BOUNCING = {"user3@example.org", "user7@example.org"}
DEFERRED = {"user5@example.org", "user10@example.org"}


def claim(services, owner: str, limit: int = 50) -> list[queue.Job]:  # type: ignore[no-untyped-def]
    return queue.claim(services.db, services.vault, owner=owner, now=services.clock.now(),
                       limit=limit, lease_seconds=services.settings.lease_seconds)


def delivered(job: queue.Job, then=None) -> queue.Outcome:  # type: ignore[no-untyped-def]
    status = {"code": 250, "message": "OK", "attempt-no": job.attempts, "mx-host": "mx"}
    return queue.Outcome(job, "delivered", DELIVERED, None, {"delivery-status": status}, then)


def refuse_some(rcpt: str) -> str | None:
    if rcpt in BOUNCING:
        return "550 5.1.1 No such user"
    if rcpt in DEFERRED:
        return "450 4.2.0 Mailbox busy"
    return None


def test_copies_settled_together_each_get_their_own_outcome(api, services, domain) -> None:
    send(api, domain, {"to": PEOPLE})
    with Sink(SinkBehaviour(rcpt=refuse_some)) as sink:
        deliver_due(services, sink)  # 12 attempts at once: their outcomes share transactions

    assert sorted(r.rcpt_tos[0] for r in sink.received) == sorted(
        set(PEOPLE) - BOUNCING - DEFERRED)
    by_rcpt = {e["recipient"]: e for e in outcomes(api, domain)}
    assert set(by_rcpt) == set(PEOPLE)
    for rcpt, event in by_rcpt.items():
        status = event["delivery-status"]
        if rcpt in BOUNCING:
            assert (event["event"], event["severity"], status["code"]) == ("failed", "permanent",
                                                                           550)
        elif rcpt in DEFERRED:
            assert (event["event"], event["severity"], status["code"]) == ("failed", "temporary",
                                                                           450)
            assert status["retry-seconds"] > 0
        else:
            assert (event["event"], status["code"]) == ("delivered", 250)
        assert status["attempt-no"] == 1
    assert len({e["id"] for e in by_rcpt.values()}) == len(PEOPLE)
    assert sorted(r.status for r in queue_rows(services)) == sorted(
        [DELIVERED] * 8 + [FAILED] * 2 + [QUEUED] * 2)
    assert all(r.lease_owner is None for r in queue_rows(services))
    bounces = api.get(f"/v3/{domain}/bounces").json()["items"]
    assert sorted(b["address"] for b in bounces) == sorted(BOUNCING)


def test_a_lost_lease_in_a_batch_leaves_the_others_recorded(
        api, services, domain, clock) -> None:
    send(api, domain, {"to": PEOPLE[:3]})
    first = claim(services, "worker-a")
    clock.advance(services.settings.lease_seconds)
    [taken] = claim(services, "worker-b", limit=1)  # the lease ran out: b has one of them

    recorded = queue.settle_all(services.db, services.vault, [delivered(j) for j in first],
                                now=clock.now())

    lost = [j.delivery_id for j, r in zip(first, recorded, strict=True) if r is None]
    assert lost == [taken.delivery_id]
    rows = {r.id: r for r in queue_rows(services)}
    assert (rows[taken.delivery_id].status, rows[taken.delivery_id].lease_owner) == (
        QUEUED, "worker-b")
    assert sorted(r.status for r in rows.values()) == [DELIVERED, DELIVERED, QUEUED]
    assert len(outcomes(api, domain)) == 2


def test_an_outcome_that_cannot_be_recorded_spoils_only_itself(api, services, domain) -> None:
    send(api, domain, {"to": PEOPLE[:4]})
    jobs = claim(services, "worker-a")

    def broken(session: Session) -> None:
        raise RuntimeError("a bug while recording")

    async def settle_all() -> list[object]:
        settler = queue.settler(services.db, services.vault, services.clock)
        return await asyncio.gather(
            *(settler.submit(delivered(j, broken if n == 1 else None))
              for n, j in enumerate(jobs)), return_exceptions=True)

    results = asyncio.run(settle_all())

    assert isinstance(results[1], RuntimeError)
    assert all(isinstance(r, dict) and r["event"] == "delivered"
               for n, r in enumerate(results) if n != 1)
    rows = {r.id: r for r in queue_rows(services)}
    assert rows[jobs[1].delivery_id].status == QUEUED  # still leased: tried again after it
    assert rows[jobs[1].delivery_id].lease_owner == "worker-a"
    assert sorted(r.status for r in rows.values()) == [DELIVERED] * 3 + [QUEUED]
    assert len(outcomes(api, domain)) == 3


def test_a_worker_that_dies_mid_batch_leaves_the_rest_to_be_delivered_after_the_lease(
        api, services, domain, clock) -> None:
    send(api, domain, {"to": PEOPLE[:6]})
    jobs = claim(services, "worker-that-died")
    # It recorded the outcomes of two attempts, then died with four in flight.
    queue.settle_all(services.db, services.vault, [delivered(j) for j in jobs[:2]],
                     now=clock.now())
    with Sink() as sink:
        deliver_due(services, sink)
        assert sink.received == []  # the other four are still leased

        clock.advance(services.settings.lease_seconds)
        deliver_due(services, sink)

    died_with = {j.email for j in jobs[2:]}
    assert sorted(r.rcpt_tos[0] for r in sink.received) == sorted(died_with)
    assert [r.status for r in queue_rows(services)] == [DELIVERED] * 6
    attempts = {e["recipient"]: e["delivery-status"]["attempt-no"] for e in outcomes(api, domain)}
    assert attempts == {j.email: 1 if j in jobs[:2] else 2 for j in jobs}
