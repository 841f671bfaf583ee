"""The contact form's messages: sealed, limited, read by the operator, purged by retention."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailhaven.errors import BadRequest, TooManyRequests
from mailhaven.retention import service as retention
from mailhaven.retention.categories import DAY
from mailhaven.site.contact import (
    CONSENT_TEXTS,
    CONSENT_VERSION,
    PER_CLIENT_PER_HOUR,
    list_contact_messages,
    submit_contact,
)
from mailhaven.site.models import ContactMessage

FORM = {"name": "Zelda Quist", "email": "zelda.quist@prospect.example",
        "company": "Quist Widgets", "topic": "sales",
        "message": "We send 2 million mails a month; what would it cost?",
        "consent_text_version": CONSENT_VERSION}


def _submit(services, client: str = "192.0.2.7", **changes: str) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return submit_contact(session, services, client=client, **{**FORM, **changes})


def test_a_message_is_kept_sealed_and_the_operator_reads_it(services, raw_dump) -> None:  # type: ignore[no-untyped-def]
    message_id = _submit(services)

    with services.db.sessions() as session:
        [entry] = list_contact_messages(session, services)
    assert entry.id == message_id
    assert (entry.name, entry.email, entry.company, entry.topic, entry.message) == (
        FORM["name"], FORM["email"], FORM["company"], "sales", FORM["message"])
    assert entry.consent_text_version == CONSENT_VERSION
    assert entry.consent_text == CONSENT_TEXTS[CONSENT_VERSION]
    assert entry.received_at == services.clock.now()
    dump = raw_dump()
    for value in ("Zelda Quist", "zelda.quist@prospect.example", "Quist Widgets",
                  "2 million mails"):
        assert dump.holding(value.encode()) == [], value


@pytest.mark.parametrize(("field", "value", "says"), [
    ("name", "", "name"), ("name", "x" * 201, "name"),
    ("email", "not an address", "email"), ("email", "a@b.example, c@d.example", "email"),
    ("company", "x" * 201, "company"), ("topic", "jobs", "topic"),
    ("message", "  ", "message"), ("message", "x" * 5001, "message"),
    ("consent_text_version", "0", "consent"),
])
def test_a_wrong_field_is_refused_and_named(services, field: str, value: str, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest, match=says):
        _submit(services, **{field: value})
    with services.db.sessions() as session:
        assert session.scalars(select(ContactMessage)).all() == []


def test_a_client_network_sends_a_few_an_hour(services, clock) -> None:  # type: ignore[no-untyped-def]
    for _ in range(PER_CLIENT_PER_HOUR):
        _submit(services)
    with pytest.raises(TooManyRequests):
        _submit(services)
    _submit(services, client="198.51.100.9")  # another client is not held back
    with pytest.raises(TooManyRequests):  # nor is another machine of the same IPv6 /64 free
        for n in range(PER_CLIENT_PER_HOUR + 1):
            _submit(services, client=f"2001:db8::{n + 1}")
    clock.advance(3600)
    _submit(services)
    with services.db.sessions() as session:
        assert len(list_contact_messages(session, services)) == 2 * PER_CLIENT_PER_HOUR + 2


def test_retention_purges_an_old_message_and_keeps_a_recent_one(services, clock) -> None:  # type: ignore[no-untyped-def]
    old = _submit(services, name="Old Sender")
    clock.advance(300 * DAY)
    recent = _submit(services, name="Recent Sender")
    clock.advance(65 * DAY + 1)  # the old one is 365 days and a second old

    assert retention.run(services.db, services.clock,
                         settings=services.settings)["contact_messages"] == 1
    with services.db.sessions() as session:
        assert [e.id for e in list_contact_messages(session, services)] == [recent]
        assert session.get(ContactMessage, old) is None


def test_the_operator_sets_the_contact_period(services, clock) -> None:  # type: ignore[no-untyped-def]
    _submit(services)
    clock.advance(31 * DAY)
    settings = services.settings.with_(contact_retention_days=30)
    assert retention.run(services.db, services.clock, dry_run=True,
                         settings=services.settings)["contact_messages"] == 0
    assert retention.run(services.db, services.clock, settings=settings)["contact_messages"] == 1


def test_accounts_can_neither_see_nor_set_the_contact_period(services, account) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        assert "contact_messages" not in {
            p["category"] for p in retention.policies(session, account[0])}
        with pytest.raises(BadRequest, match="Unknown retention category"):
            retention.set_policies(session, account[0], {"contact_messages": 3000},
                                   services.clock.now())
    entry = next(e for e in retention.schedule(services.settings)
                 if e["category"] == "contact_messages")
    assert (entry["default_days"], entry["set_by"]) == (365, "operator")
