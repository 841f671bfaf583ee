"""The notice lifecycle (N12): the 30-day rule, holders mailed through our own queue,
objection → deletion on the effective date (once), withdrawal, the API's shapes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mailhaven.accounts.models import Account
from mailhaven.audit.models import AuditEntry
from mailhaven.errors import BadRequest, Conflict
from mailhaven.notices import service
from mailhaven.notices.models import NoticeObjection
from mailhaven.notices.runner import run_due
from mailhaven.privacy.erasure import LEGAL_HOLD
from mailhaven.storage.notice_versions import version_in_force
from tests.support import Sink, create_tenant, deliver_due
from tests.test_cli import _cli
from tests.web.helpers import add_user

DAY = 86400.0
TEXT = "# Privacy notice\n\nWe keep little.\n\n# Sub-processors\n\nNone.\n"
AMENDED = TEXT.replace("We keep little.", "We keep little, and now logs for 60 days.")


def first_and_amendment(services, *, significant: bool = True) -> service.Notice:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    service.publish(services, version="2", text=TEXT, effective_at=now, significant=False)
    return service.publish(services, version="3", text=AMENDED, effective_at=now + 30 * DAY,
                           significant=significant, summary="Logs are kept for 60 days.")


def test_the_first_notice_takes_effect_at_once_and_amendments_wait_30_days(services) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    first = service.publish(services, version="2", text=TEXT, effective_at=now - DAY,
                            significant=True)
    assert first.effective_at == now  # at once, never before it was published
    with services.main_db.sessions() as session:
        assert service.in_force(session, now).version == "2"
        assert version_in_force(session, now) == "2"
    with pytest.raises(BadRequest, match="at least 30 days"):
        service.publish(services, version="3", text=AMENDED,
                        effective_at=service.midnight(now) + 29 * DAY, significant=True)
    with pytest.raises(BadRequest, match="in the past"):
        service.publish(services, version="3", text=AMENDED,
                        effective_at=service.midnight(now) - DAY, significant=False)
    with pytest.raises(Conflict):
        service.publish(services, version="2", text=AMENDED, effective_at=now + 40 * DAY,
                        significant=True)
    done = service.publish(services, version="3", text=AMENDED, effective_at=now + 30 * DAY,
                           significant=True, summary="Logs for 60 days.")
    assert done.version == "3" and done.significant
    with services.main_db.sessions() as session:
        assert service.in_force(session, now).version == "2"
        assert [n.version for n in service.pending_significant(session, now)] == ["3"]
        assert service.in_force(session, now + 30 * DAY).version == "3"
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.action == "notice.published")).all()
    assert len(actions) == 2


def test_the_30_days_are_counted_in_dates_whatever_the_hour(services) -> None:  # type: ignore[no-untyped-def]
    services.clock.advance(-(services.clock.now() % DAY) + 23 * 3600)  # 23:00 UTC
    now = services.clock.now()
    service.publish(services, version="2", text=TEXT, effective_at=now, significant=False)
    earliest = service.midnight(now) + 30 * DAY
    with pytest.raises(BadRequest, match=f"{service.day(earliest)} is the earliest date"):
        service.publish(services, version="3", text=AMENDED, effective_at=earliest - DAY,
                        significant=True, summary="Logs for 60 days.")
    done = service.publish(services, version="3", text=AMENDED, effective_at=earliest,
                           significant=True, summary="Logs for 60 days.")
    assert done.effective_at == earliest
    today = service.publish(services, version="4", text=TEXT,  # today's date: at once
                            effective_at=service.midnight(now), significant=False)
    assert today.effective_at == now


@pytest.mark.parametrize("version", ["1", "2b", "0", "-3", "2.1", "02"])
def test_a_version_is_a_number_after_the_newest(services, version) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    if version == "02":  # older than the newest (2), if it were taken as a number
        service.publish(services, version="2", text=TEXT, effective_at=now, significant=False)
    with pytest.raises((BadRequest, Conflict)):
        service.publish(services, version=version, text=TEXT, effective_at=now,
                        significant=False)
    service.publish(services, version="5", text=TEXT, effective_at=now, significant=False)
    with pytest.raises(Conflict, match="the next version is 6"):
        service.publish(services, version="4", text=AMENDED, effective_at=now,
                        significant=False)
    with services.main_db.sessions() as session:
        assert service.next_version(session) == "6"


def test_a_significant_amendment_says_what_changes(services) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    service.publish(services, version="2", text=TEXT, effective_at=now, significant=False)
    for summary in ("", "  "):
        with pytest.raises(BadRequest, match="needs a summary"):
            service.publish(services, version="3", text=AMENDED, significant=True,
                            effective_at=service.earliest_significant(now), summary=summary)


def test_consents_record_the_stored_version_in_force(services) -> None:  # type: ignore[no-untyped-def]
    from mailhaven.privacy.service import Context
    from mailhaven.site.consent import notice_in_force

    assert Context.of(services).notice_version == services.settings.notice_version == "1"
    first_and_amendment(services)
    assert Context.of(services).notice_version == notice_in_force(services) == "2"
    services.clock.advance(30 * DAY)
    assert notice_in_force(services) == "3"


def test_the_cli_refuses_a_significant_amendment_sooner_than_30_days(settings, services) -> None:  # type: ignore[no-untyped-def]
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}
    file = settings.data_dir / "notice.txt"
    file.write_text(TEXT)
    today = datetime.now(UTC).date()
    first = _cli(env, "notice", "publish", str(file), "--version", "2", "--effective",
                 today.isoformat(), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["in_force"] is True
    file.write_text(AMENDED)
    soon = (today + timedelta(days=10)).isoformat()
    refused = _cli(env, "notice", "publish", str(file), "--version", "3", "--effective", soon,
                   "--significant")
    assert refused.returncode == 2
    assert "at least 30 days" in refused.stderr and "Traceback" not in refused.stderr
    later = (today + timedelta(days=30)).isoformat()  # the date, whatever the hour
    done = _cli(env, "notice", "publish", str(file), "--version", "3", "--effective", later,
                "--significant", "--summary", "Logs for 60 days.", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["version"], shown["significant"], shown["in_force"]) == ("3", True, False)
    listed = _cli(env, "notice", "list", "--json")
    assert [n["version"] for n in json.loads(listed.stdout)["items"]] == ["2", "3"]


def test_a_significant_amendment_is_mailed_to_every_holder_once(services, account) -> None:  # type: ignore[no-untyped-def]
    bee = create_tenant(services)
    add_user(services, account[0], email="ann@acme.test", role="admin")
    add_user(services, account[0], email="OPS@acme.test", role="admin", name="Same")  # dup
    add_user(services, account[0], email="dev@acme.test", role="developer")
    gone = create_tenant(services, name="Gone", domain="mg.gone.test")
    with services.db.transaction() as session:
        session.get(Account, gone.account_id).deleted_at = services.clock.now()
    notice = first_and_amendment(services)
    assert notice.mailed == 3
    with Sink() as sink:
        deliver_due(services, sink)
    got = {r.rcpt_tos[0].lower(): r.message for r in sink.received}
    assert set(got) == {"ops@acme.test", "ann@acme.test", "ops@bee.test"}, bee
    body = got["ann@acme.test"].get_body(("plain",)).get_content()
    assert got["ann@acme.test"]["Subject"].startswith("Our privacy notice changes on ")
    assert "Logs are kept for 60 days." in body
    assert "  - We keep little.\n  + We keep little, and now logs for 60 days." \
        in body.replace("\r\n", "\n")
    assert f"{services.settings.api_url}/privacy/versions/3" in body
    assert "/v1/privacy/notices/3/objection" in body
    assert got["ann@acme.test"]["From"] == services.settings.system_from


def test_an_objection_deletes_the_account_on_the_effective_date_once(services, api,
                                                                     account) -> None:  # type: ignore[no-untyped-def]
    notice = first_and_amendment(services)
    made = api.post("/v1/privacy/notices/3/objection")
    assert made.status_code == 200, made.text
    assert api.post("/v1/privacy/notices/3/objection").status_code == 200  # idempotent
    state = api.get("/v1/privacy/account").json()
    assert state["account"] == account[0]
    assert state["objection"]["version"] == "3"
    assert state["deletion_scheduled_at"] == state["objection"]["scheduled_for"]
    assert datetime.fromisoformat(state["deletion_scheduled_at"]).timestamp() \
        == pytest.approx(notice.effective_at, abs=1e-5)
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(NoticeObjection)) == 1

    services.clock.advance(30 * DAY - 1)  # the day before: nothing
    run_due(services)
    assert api.get("/v1/privacy/account").status_code == 200
    services.clock.advance(1)
    assert run_due(services) == 2  # version 3 in force, one account deleted
    assert run_due(services) == 0
    with services.db.sessions() as session:
        deleted = session.get(Account, account[0])
        assert deleted.deleted_at == notice.effective_at
        assert deleted.legal_hold == LEGAL_HOLD
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "privacy.account.deleted")) == 1
        assert session.scalar(select(NoticeObjection.carried_out_at)) == notice.effective_at
    assert api.get("/v3/domains").status_code == 401  # its keys are revoked


def test_two_processes_carry_out_a_due_deletion_once(services, account) -> None:  # type: ignore[no-untyped-def]
    first_and_amendment(services)
    service.object_to(services, account[0], "3")
    services.clock.advance(30 * DAY)
    results: list[list[str]] = []
    workers = [threading.Thread(target=lambda: results.append(
        service.carry_out_due(services, services.clock.now()))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(len(r) for r in results) == [0, 1]
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "privacy.account.deleted")) == 1


def test_a_withdrawn_objection_deletes_nothing(services, api, account) -> None:  # type: ignore[no-untyped-def]
    first_and_amendment(services)
    api.post("/v1/privacy/notices/3/objection")
    withdrawn = api.delete("/v1/privacy/notices/3/objection")
    assert withdrawn.status_code == 200, withdrawn.text
    assert api.get("/v1/privacy/account").json()["deletion_scheduled_at"] is None
    again = api.delete("/v1/privacy/notices/3/objection")
    assert again.status_code == 404 and "message" in again.json()
    services.clock.advance(31 * DAY)
    run_due(services)
    assert api.get("/v3/domains").status_code == 200
    with services.db.sessions() as session:
        assert session.get(Account, account[0]).deleted_at is None
        actions = set(session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("notice.%"))))
    assert {"notice.objected", "notice.objection_withdrawn"} <= actions


def test_withdrawing_one_objection_tells_of_another_and_comes_too_late_once_due(
        services, api, account) -> None:  # type: ignore[no-untyped-def]
    first_and_amendment(services)
    later = service.publish(services, version="4", text=TEXT, significant=True,
                            effective_at=service.earliest_significant(services.clock.now())
                            + 10 * DAY, summary="Back to 30 days.")
    assert api.post("/v1/privacy/notices/3/objection").status_code == 200
    assert api.post("/v1/privacy/notices/4/objection").status_code == 200
    withdrawn = api.delete("/v1/privacy/notices/3/objection").json()
    assert "will not be deleted" not in withdrawn["message"]
    assert f"still to be deleted on {service.day(later.effective_at)}" in withdrawn["message"]
    assert "version 4" in withdrawn["message"]
    assert datetime.fromisoformat(withdrawn["deletion_scheduled_at"]).timestamp() \
        == pytest.approx(later.effective_at, abs=1e-5)
    assert api.get("/v1/privacy/account").json()["objection"]["version"] == "4"
    services.clock.advance(later.effective_at - services.clock.now())  # due, not yet run
    too_late = api.delete("/v1/privacy/notices/4/objection")
    assert too_late.status_code == 409 and "due" in too_late.json()["message"]
    assert run_due(services) == 3  # versions 3 and 4 in force, the account deleted
    with services.db.sessions() as session:
        assert session.get(Account, account[0]).deleted_at is not None


def test_withdrawing_needs_the_version(services, account) -> None:  # type: ignore[no-untyped-def]
    first_and_amendment(services)
    service.object_to(services, account[0], "3")
    for version in (None, ""):
        with pytest.raises(BadRequest, match="which amendment"):
            service.withdraw(services, account[0], version)
    with services.db.sessions() as session:
        assert service.scheduled_deletion(session, account[0]) is not None


def test_the_api_lists_versions_and_refuses_mailgun_style(services, api) -> None:  # type: ignore[no-untyped-def]
    first_and_amendment(services)
    items = api.get("/v1/privacy/notices").json()["items"]
    assert [i["version"] for i in items] == ["2", "3"]
    assert set(items[1]) == {"version", "published_at", "effective_at", "significant",
                             "in_force", "summary"}
    assert (items[0]["in_force"], items[1]["in_force"], items[1]["significant"]) \
        == (True, False, True)
    datetime.fromisoformat(items[1]["effective_at"])
    one = api.get("/v1/privacy/notices/3").json()
    assert one["text"] == AMENDED and one["summary"] == "Logs are kept for 60 days."
    missing = api.get("/v1/privacy/notices/9")
    assert (missing.status_code, missing.json()) == (404, {"message": "No such notice version"})
    for version, status in (("2", 400), ("9", 404)):  # not significant / none
        refused = api.post(f"/v1/privacy/notices/{version}/objection")
        assert refused.status_code == status and "message" in refused.json()
    services.clock.advance(30 * DAY)
    late = api.post("/v1/privacy/notices/3/objection")
    assert late.status_code == 400 and "in force" in late.json()["message"]
    assert api.get("/v1/privacy/subprocessors").json() == {"items": []}


def test_only_an_admin_key_may_object(services, live, account) -> None:  # type: ignore[no-untyped-def]
    from mailhaven.accounts.service import issue_key

    first_and_amendment(services)
    with services.db.transaction() as session:
        key = issue_key(session, account[0], clock=services.clock, role="analyst")
    with live.client(key) as client:
        assert client.get("/v1/privacy/notices").status_code == 200
        assert client.post("/v1/privacy/notices/3/objection").status_code == 403


def test_the_scheduler_takes_its_turn_and_deletes_once(services, account) -> None:  # type: ignore[no-untyped-def]
    from mailhaven.notices.runner import NoticeRunner
    from tests.support import run_loop

    first_and_amendment(services)
    service.object_to(services, account[0], "3")
    services.clock.advance(30 * DAY)
    runner = NoticeRunner(services)
    assert run_loop(runner.run_once()) == 2
    assert run_loop(NoticeRunner(services).run_once()) == 0  # not its turn again yet
    with services.db.sessions() as session:
        assert session.get(Account, account[0]).deleted_at is not None
