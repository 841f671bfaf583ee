"""The register of sub-processors (N10): adding or replacing one is a significant amendment
that starts the 30-day clock; the new one receives data only from that date."""

from __future__ import annotations

import json

import pytest

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
    assert "# Sub-processors" in notice.text and "- Relay GmbH: outbound relay" in notice.text
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
    assert "- Other Relay SA" in new.notice.text
    assert new.notice.text.count("# Sub-processors") == 1
    handover = service.midnight(now + 31 * DAY) + 30 * DAY
    with services.main_db.sessions() as session:
        assert [s.name for s in active_subprocessors(session, handover - 1)] == ["Relay GmbH"]
        assert [s.name for s in active_subprocessors(session, handover)] == ["Other Relay SA"]
    removed = subprocessors.remove(services, new.subprocessor["id"])
    assert removed.significant is False and "- Other Relay SA" not in removed.text
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
