"""Announcing a significant amendment is an outbox per region (N12): each region's holders
are mailed in one transaction with the region's marker, so the scheduler completes what a
publication cut short left undone, and nobody is mailed twice."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from mailhaven.accounts.service import create_account
from mailhaven.audit.models import AuditEntry
from mailhaven.delivery.models import Delivery
from mailhaven.notices import service
from mailhaven.notices.models import NoticeAnnouncement
from mailhaven.notices.runner import run_due

DAY = 86400.0


def _deliveries(region) -> int:  # type: ignore[no-untyped-def]
    with region.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


def test_an_announcement_cut_short_is_completed_once_per_region(platform) -> None:  # type: ignore[no-untyped-def]
    us, eu = platform.regions["us"], platform.regions["eu"]
    for region, names in ((us, ("a", "b")), (eu, ("c",))):
        with region.db.transaction() as session:
            for name in names:
                create_account(session, region.vault, name=name,
                               email=f"{name}@{region.region}.test", clock=region.clock)
    now = us.clock.now()
    service.publish(us, version="2", text="# Notice\n\nv2\n", effective_at=now,
                    significant=False)
    with platform.directory.transaction() as session:  # published, then the process died
        notice = service.publish_in(session, us, version="3", text="# Notice\n\nv3\n",
                                    effective_at=service.earliest_significant(now),
                                    significant=True, summary="More.", actor="cli", now=now)
    assert (_deliveries(us), _deliveries(eu)) == (0, 0)

    assert run_due(us) == 1  # us's scheduler mails us's holders
    assert run_due(us) == 0
    assert (_deliveries(us), _deliveries(eu)) == (2, 0)
    results: list[list[str]] = []
    workers = [threading.Thread(target=lambda: results.append(
        service.announce_owed(eu, eu.clock.now()))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(len(r) for r in results) == [0, 1]
    assert service.announce(us, notice) == 0  # everybody was told already
    assert (_deliveries(us), _deliveries(eu)) == (2, 1)
    for region, mailed in ((us, 2), (eu, 1)):
        with region.db.sessions() as session:
            assert session.get(NoticeAnnouncement, "3").mailed == mailed
            details = [json.loads(d) for d in session.scalars(select(AuditEntry.details).where(
                AuditEntry.action == "notice.announced"))]
        assert details == [{"region": region.region, "mailed": mailed}]  # per region


def test_a_region_announces_only_what_is_still_to_come(platform) -> None:  # type: ignore[no-untyped-def]
    us = platform.regions["us"]
    with us.db.transaction() as session:
        create_account(session, us.vault, name="a", email="a@us.test", clock=us.clock)
    now = us.clock.now()
    with platform.directory.transaction() as session:
        service.publish_in(session, us, version="2", text="v2", effective_at=now,
                           significant=True, summary="", actor="cli", now=now)  # the first
        service.publish_in(session, us, version="3", text="v3", significant=True,
                           effective_at=service.earliest_significant(now), summary="More.",
                           actor="cli", now=now)
    us.clock.advance(31 * DAY)  # in force before anyone ran: too late to object
    run_due(us)
    assert _deliveries(us) == 0
