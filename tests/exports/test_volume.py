"""The acceptance test of issue 4: an account with 100,000 events exports completely, and
its JSON validates against the published schema."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
from sqlalchemy import insert

from mailhaven.events.models import Event
from mailhaven.events.service import event_json, new_event_id
from mailhaven.exports import export_account
from mailhaven.messages.content import MessageFacts
from tests.exports.archive import validate

EVENTS, RECIPIENTS = 100_000, 200
_ID = "EVENT-ID-PLACEHOLDER"


def _insert_events(services, account_id: str) -> None:  # type: ignore[no-untyped-def]
    """Rows as events.service.record_each writes them, each sealed under its recipient's
    key (with its own event id as associated data), inserted in bulk."""
    from mailhaven.domains.models import Domain

    vault, now = services.vault, services.clock.now()
    with services.db.transaction() as session:
        domain_id = session.query(Domain.id).filter(Domain.account_id == account_id).scalar()
        addresses = [f"user{i}@example.org" for i in range(RECIPIENTS)]
        keys = vault.subjects(session, account_id, addresses)
    per_recipient = []
    for address in addresses:
        facts = MessageFacts("", "m@mg.acme.test", {
            "to": address, "from": "ops@mg.acme.test", "subject": "Volume",
            "message-id": "m@mg.acme.test"}, [], 100, ["bulk"], {}, False)
        template = json.dumps({**event_json(facts, "delivered", address, now), "id": _ID})
        per_recipient.append((keys[address], vault.blind_index(account_id, address), template))
    chunk = []
    for n in range(EVENTS):
        key, index, template = per_recipient[n % RECIPIENTS]
        event_id = new_event_id()
        chunk.append({
            "event_id": event_id, "account_id": account_id, "domain_id": domain_id,
            "storage_key": None, "event": "delivered", "timestamp": now + n, "severity": None,
            "message_id_index": vault.message_index(account_id, "m@mg.acme.test"),
            "tags": '["bulk"]', "recipient_index": index,
            "key_id": key.id,
            "payload": vault.seal(key, template.replace(_ID, event_id).encode(), event_id)})
        if len(chunk) == 10_000 or n == EVENTS - 1:
            with services.db.transaction() as session:
                session.execute(insert(Event), chunk)
            chunk = []


@pytest.mark.slow
def test_an_account_with_100k_events_exports_and_validates(services, account, domain,
                                                           tmp_path) -> None:
    started = time.perf_counter()
    _insert_events(services, account[0])
    inserted = time.perf_counter()
    seen: list[tuple[int, int]] = []
    done = export_account(services.db, services.vault, account[0], tmp_path / "big.zip",
                          lambda n, total: seen.append((n, total)))
    exported = time.perf_counter()
    assert done.rows["events"] == EVENTS
    assert len(seen) > EVENTS // 1000 and seen[-1][0] == seen[-1][1]

    with zipfile.ZipFile(done.path) as archive:
        with archive.open("events.csv") as raw:
            rows = sum(1 for _ in csv.reader(io.TextIOWrapper(raw, "utf-8", newline="")))
        assert rows == EVENTS + 1  # and a header
        document = json.loads(archive.read("export.json"))
    events = document["categories"]["events"]
    assert len(events) == EVENTS
    assert len({e["id"] for e in events}) == EVENTS
    assert {e["recipient"] for e in events} == {f"user{i}@example.org" for i in range(RECIPIENTS)}
    validate(document)
    # Wall times for the report, not assertions: `pytest -s` shows them.
    print(f"\n100k events: insert {inserted - started:.1f}s, export {exported - inserted:.1f}s, "
          f"read and validate {time.perf_counter() - exported:.1f}s")
