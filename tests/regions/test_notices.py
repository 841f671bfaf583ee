"""The notice lifecycle across regions: notices in the main database, every region's
holders mailed through their own region's queue, objections kept in the account's region."""

from __future__ import annotations

from sqlalchemy import func, select

from mailhaven.accounts.service import create_account
from mailhaven.delivery.models import Delivery
from mailhaven.notices import service
from mailhaven.notices.models import NoticeObjection, PrivacyNotice
from mailhaven.notices.runner import run_due

DAY = 86400.0


def test_every_regions_holders_are_mailed_from_their_own_queue(platform) -> None:  # type: ignore[no-untyped-def]
    made = {}
    for name, services in platform.regions.items():
        with services.db.transaction() as session:
            made[name] = create_account(session, services.vault, name=name,
                                        email=f"holder@{name}.test",
                                        clock=services.clock).account_id
    us, eu = platform.regions["us"], platform.regions["eu"]
    now = us.clock.now()
    service.publish(us, version="2", text="# Notice\n\nv2\n", effective_at=now,
                    significant=False)
    notice = service.publish(eu, version="3", text="# Notice\n\nv3\n",
                             effective_at=now + 30 * DAY, significant=True, summary="More.")
    assert notice.mailed == 2
    for name, services in platform.regions.items():
        with services.db.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Delivery)) == 1, name
            assert session.scalar(select(func.count()).select_from(PrivacyNotice)) \
                == (2 if services.db is platform.directory else 0)
    with platform.directory.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PrivacyNotice)) == 2
    service.object_to(eu, made["eu"], "3")
    with eu.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(NoticeObjection)) == 1
    eu.clock.advance(30 * DAY)
    assert run_due(eu) == 2
    assert run_due(us) == 0
