"""The register of sub-processors (N10): adding or replacing one is a significant amendment
that starts the 30-day clock; the new one receives data only from that date."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.disclosures.register import Subprocessor, active_subprocessors, signing_key
from mailhaven.errors import BadRequest, NotFound
from mailhaven.notices import service, subprocessors
from tests.test_cli import _cli

DAY = 86400.0
RELAY = {"name": "Relay GmbH", "purpose": "outbound relay", "categories": ["addresses",
         "message content"], "location": "Frankfurt, Germany", "region": "us",
         "transfer_mechanism": "adequacy", "contract_date": "2026-11-01"}


def test_adding_one_announces_it_30_days_ahead(services, account) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    start = service.midnight(now) + 30 * DAY  # the date 30 days on
    added = subprocessors.add(services, **RELAY, endpoint="https://relay.example/notify")
    notice = added.notice
    assert (notice.version, notice.significant) == ("2", True)
    assert notice.effective_at == start and notice.mailed == 1
    assert "Relay GmbH is added" in notice.summary
    assert "Relay GmbH" not in notice.text  # the register is not baked into the text
    assert "amends the built-in notice" in notice.text
    assert added.subprocessor["from"] == service.day(start)
    assert added.subprocessor["upcoming"] is True
    with services.main_db.sessions() as session:
        listed = subprocessors.listed(session, now)
        assert [s.name for s in listed] == ["Relay GmbH"]
        assert active_subprocessors(session, now) == []  # no data before its date
        assert [s.name for s in active_subprocessors(session, start)] == ["Relay GmbH"]
        row = session.get(Subprocessor, added.subprocessor["id"])
        assert signing_key(services.platform.directory_vault, row) == added.signing_key
        assert added.signing_key.encode() not in row.signing_key_sealed
    services.clock.advance(30 * DAY)
    with services.main_db.sessions() as session:
        assert service.in_force(session, services.clock.now()).version == "2"


def test_replacing_one_hands_over_on_the_new_ones_date(services) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    old = subprocessors.add(services, **RELAY)
    assert old.signing_key is None  # no endpoint, no key
    services.clock.advance(31 * DAY)
    new = subprocessors.replace(services, old.subprocessor["id"],
                                **{**RELAY, "name": "Other Relay SA"})
    assert new.notice.version == "3" and "replaces Relay GmbH" in new.notice.summary
    assert new.notice.text == old.notice.text  # the text in force on its date
    handover = service.midnight(now + 31 * DAY) + 30 * DAY
    with services.main_db.sessions() as session:
        assert [s.name for s in active_subprocessors(session, handover - 1)] == ["Relay GmbH"]
        assert [s.name for s in active_subprocessors(session, handover)] == ["Other Relay SA"]
    removed = subprocessors.remove(services, new.subprocessor["id"])
    assert removed.significant is False and removed.effective_at == services.clock.now()
    with pytest.raises(NotFound):
        subprocessors.remove(services, new.subprocessor["id"])


@pytest.mark.parametrize("wrong", [{"categories": []}, {"region": "mars"},
                                   {"contract_date": "soon"},
                                   {"endpoint": "ftp://relay.example/"}])
def test_a_wrong_entry_is_refused(services, wrong) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest):
        subprocessors.add(services, **{**RELAY, **wrong})


def test_the_cli_adds_lists_and_shows_the_key_once(settings, services) -> None:  # type: ignore[no-untyped-def]
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}
    done = _cli(env, "subprocessors", "add", "--name", "Relay GmbH", "--purpose", "relay",
                "--category", "addresses", "--category", "message content", "--location",
                "Frankfurt, Germany", "--transfer-mechanism", "adequacy", "--contract-date",
                "2026-11-01", "--endpoint", "https://relay.example/notify", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert len(shown["signing_key"]) == 64 and shown["notice"]["significant"] is True
    listed = json.loads(_cli(env, "subprocessors", "list", "--json").stdout)["items"]
    assert [(s["name"], s["upcoming"]) for s in listed] == [("Relay GmbH", True)]
    assert "signing_key" not in listed[0]
    assert listed[0]["notification_endpoint"] == "https://relay.example/notify"  # operators
    refused = _cli(env, "subprocessors", "remove", "nope")
    assert refused.returncode == 2 and "No such sub-processor" in refused.stderr
    record = json.loads(_cli(env, "privacy", "inventory", "--format", "json").stdout)
    assert [s["name"] for s in record["subprocessors"]] == ["Relay GmbH"]
    assert record["regions"] == [{"name": "us", "home": True,
                                  "database": "sqlite" if services.db.is_sqlite
                                  else "postgresql"}]
    assert "transfer log" in record["transfers"]
    assert "postgresql://" not in json.dumps(record["regions"])


def test_customers_do_not_see_where_sub_processors_are_notified(services, api, live) -> None:  # type: ignore[no-untyped-def]
    subprocessors.add(services, **RELAY, endpoint="https://relay.example/notify")
    items = api.get("/v1/privacy/subprocessors").json()["items"]
    assert [i["name"] for i in items] == ["Relay GmbH"]
    assert "notification_endpoint" not in items[0]
    with live.client() as client:
        for path in ("/privacy/subprocessors", "/privacy"):
            assert "relay.example/notify" not in client.get(path).text


def test_an_amendment_of_the_register_neither_pulls_nor_drops_a_text_change(services) -> None:  # type: ignore[no-untyped-def]
    """A text change pending for day 35, a sub-processor added for day 30: the text changes
    on day 35, not 30, and the sub-processor stays listed after day 35."""
    from mailhaven.web import notice as pages

    now = services.clock.now()
    text2, text3 = "# Notice\n\nLogs: 30 days.\n", "# Notice\n\nLogs: 60 days.\n"
    service.publish(services, version="2", text=text2, effective_at=now, significant=False)
    later = service.earliest_significant(now) + 5 * DAY
    v3 = service.publish(services, version="3", text=text3, effective_at=later,
                         significant=True, summary="Logs for 60 days.")
    added = subprocessors.add(services, **RELAY)
    v4 = added.notice
    assert v4.effective_at < v3.effective_at and v4.text == text2
    with services.main_db.sessions() as session:
        assert service.in_force(session, v4.effective_at).text == text2  # not 5 days early
        assert service.in_force(session, v3.effective_at).text == text3
    v2 = next(n for n in _versions(services) if n.version == "2")
    assert pages.changes_between(services, v2, v4) == (
        [], ["Relay GmbH is added (outbound relay; data: addresses, message content; "
             "Frankfurt, Germany)"], False)
    text_lines, register_lines, _ = pages.changes_between(services, v4, v3)
    assert register_lines == [] and any(line.kind == "ins" for line in text_lines)
    on_v3 = pages.registers(services, v3.effective_at)[0]
    assert [s["name"] for s in on_v3] == ["Relay GmbH"]  # still there once v3 is in force
    assert "notification_endpoint" not in on_v3[0]


def test_the_register_changes_between_versions(services) -> None:  # type: ignore[no-untyped-def]
    from mailhaven.web import notice as pages

    old = subprocessors.add(services, **RELAY)
    services.clock.advance(31 * DAY)
    new = subprocessors.replace(services, old.subprocessor["id"],
                                **{**RELAY, "name": "Other Relay SA"})
    assert pages.changes_between(services, old.notice, new.notice)[1] == [
        "Other Relay SA replaces Relay GmbH (outbound relay; data: addresses, message "
        "content; Frankfurt, Germany)"]
    services.clock.advance(31 * DAY)
    removed = subprocessors.remove(services, new.subprocessor["id"])
    assert pages.changes_between(services, new.notice, removed)[1] == [
        "Other Relay SA is removed"]


def test_one_withdrawn_before_its_date_never_shows_as_upcoming(services, live) -> None:  # type: ignore[no-untyped-def]
    """Announced, then removed before its date: it never receives data, so neither the
    register nor any version lists it, and the announcing version's summary is shown as
    the publisher's, under the register's own (non-)change."""
    added = subprocessors.add(services, **RELAY)
    services.clock.advance(2 * DAY)
    withdrawn = subprocessors.remove(services, added.subprocessor["id"])
    assert "Relay GmbH, announced for" in withdrawn.summary
    assert "withdrawn before it started" in withdrawn.summary
    assert "no longer" not in withdrawn.summary
    now = services.clock.now()
    with services.main_db.sessions() as session:
        assert subprocessors.listed(session, now) == []
        assert active_subprocessors(session, added.notice.effective_at) == []
        details = session.scalars(select(AuditEntry.details).where(
            AuditEntry.action == "subprocessor.removed")).all()
    assert len(details) == 1 and json.loads(details[0])["before_start"] is True
    with live.client() as client:
        register = client.get("/privacy/subprocessors").text
        announcing = client.get(f"/privacy/versions/{added.notice.version}").text
    assert "Relay GmbH" not in register and "upcoming" not in register
    assert "the register does not change" in announcing
    assert "The publisher's summary: Relay GmbH is added" in announcing


def test_replacing_one_before_its_date_withdraws_it(services, live) -> None:  # type: ignore[no-untyped-def]
    """Replaced on the day it was announced (its until would equal its from): only the new
    one is listed, and the log says it was a replacement."""
    old = subprocessors.add(services, **RELAY)
    new = subprocessors.replace(services, old.subprocessor["id"],
                                **{**RELAY, "name": "Other Relay SA"})
    assert "withdrawn before it started" in new.notice.summary
    with services.main_db.sessions() as session:
        assert [s.name for s in subprocessors.listed(session, services.clock.now())] == [
            "Other Relay SA"]
        assert [s.name for s in active_subprocessors(session, new.notice.effective_at)] == [
            "Other Relay SA"]
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("subprocessor.%")).order_by(AuditEntry.id)).all()
    assert actions == ["subprocessor.added", "subprocessor.replaced"]
    with live.client() as client:
        register = client.get("/privacy/subprocessors").text
    assert "Other Relay SA" in register and "Relay GmbH" not in register


def _versions(services) -> list[service.Notice]:  # type: ignore[no-untyped-def]
    with services.main_db.sessions() as session:
        return service.notice_versions(session)
