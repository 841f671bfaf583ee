"""Erasing a subject with many rows (issue 17): the request destroys their keys and their
messages' content keys, and the background job (`ErasureDeleter`) deletes their rows;
nothing of theirs is readable in between, a restored backup is handled the same way, and a
process that dies before (or during) the job loses nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from mailhaven.backup.service import create_backup, restore_backup
from mailhaven.delivery.models import Delivery
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.privacy import erasure
from mailhaven.privacy.models import Erasure
from mailhaven.privacy.runner import ErasureDeleter
from mailhaven.services import Services
from mailhaven.vault.models import DESTROYED, ERASED, VaultKey
from tests.backup.support import keyring
from tests.support import Sink, deliver_due

ANN, BOB = "ann@example.org", "bob@example.org"
BODY = "Statement-5d1e2 for your eyes only"


@pytest.fixture(autouse=True)
def _deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subject here counts as large: their rows are left to the job."""
    monkeypatch.setattr(erasure, "INLINE_ROWS", 0)


def _send(api, domain: str, to: list[str], subject: str) -> str:  # type: ignore[no-untyped-def]
    sent = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": to, "subject": subject, "text": BODY})
    assert sent.status_code == 200, sent.text
    return str(sent.json()["id"])


def _mail(api, services: Services, domain: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Three messages to ann, one to ann and bob, delivered; their storage keys."""
    for i in range(3):
        _send(api, domain, [ANN], f"Statement {i}")
    _send(api, domain, [ANN, BOB], "Shared")
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 5
    items = api.get(f"/v3/{domain}/events", params={"limit": 300}).json()["items"]
    return sorted({e["storage"]["key"] for e in items})


def _ann_rows(services: Services, account_id: str) -> dict[str, int]:
    index = services.vault.blind_index(account_id, ANN)
    with services.db.sessions() as session:
        count = lambda q: session.scalar(select(func.count()).select_from(q.subquery()))  # noqa: E731
        return {
            "events": count(select(Event.id).where(Event.recipient_index == index)),
            "copies": count(select(Delivery.id).join(VaultKey, VaultKey.id ==
                                                     Delivery.subject_key_id)
                            .where(VaultKey.purpose == ERASED)),
            "erased keys": count(select(VaultKey.id).where(VaultKey.wrapped_key == DESTROYED)),
            "bodies": count(select(Message.id).where(Message.content_sealed.is_not(None))),
            "pending": count(select(Erasure.id).where(Erasure.rows_deleted_at.is_(None))),
        }


def _assert_ann_unreadable(api, domain: str, storage_keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    everything = api.get(f"/v3/{domain}/events", params={"limit": 300})
    assert everything.status_code == 200
    assert ANN not in everything.text and BODY not in everything.text
    assert {e["recipient"] for e in everything.json()["items"]} == {BOB}
    assert api.get(f"/v3/{domain}/events", params={"recipient": ANN}).json()["items"] == []
    for key in storage_keys:  # her messages' bodies: unreadable (404); bob's: still his
        stored = api.get(f"/v3/domains/{domain}/messages/{key}")
        assert ANN not in stored.text
    logs = api.post("/v1/analytics/logs", json={"start": "Mon, 01 Jan 2024 00:00:00 +0000",
                                                "pagination": {"limit": 100}})
    assert logs.status_code == 200, logs.text
    assert ANN not in logs.text and {i["recipient"] for i in logs.json()["items"]} == {BOB}


def test_erase_returns_with_the_subject_unreadable_and_the_job_deletes_their_rows(  # type: ignore[no-untyped-def]
        api, services, account, domain, clock) -> None:
    storage_keys = _mail(api, services, domain)
    queued = _send(api, domain, [ANN], "Still queued")  # not delivered yet
    before = _ann_rows(services, account[0])
    assert before["events"] == 9 and before["pending"] == 0

    erased = api.delete("/v1/privacy/recipients/ann%40example.org")
    assert erased.status_code == 200, erased.text
    assert erased.json()["record"]["counts"] == {
        "events": 9, "cancelled": 1, "copies": 5, "messages": 5, "deletion": "scheduled"}

    # At once: nothing of hers readable anywhere, though her rows are still there.
    _assert_ann_unreadable(api, domain, storage_keys)
    rows = _ann_rows(services, account[0])
    assert rows["events"] == 9 and rows["copies"] == 5 and rows["pending"] == 1
    # hers, and her five messages' (no other copy waiting: bob's was delivered)
    assert rows["erased keys"] == 1 + 5
    with services.db.sessions() as session:
        assert services.vault.keys(session, json.loads(
            session.scalars(select(Erasure.key_ids)).one())) == {}
    with Sink() as sink:  # her queued copy was cancelled: never sent
        deliver_due(services, sink)
    assert sink.received == []
    assert queued

    runner = ErasureDeleter(services)
    assert asyncio.run(runner.run_once()) == 0  # it deleted everything, and sleeps
    after = _ann_rows(services, account[0])
    assert after == {"events": 0, "copies": 0, "erased keys": 0, "bodies": 0, "pending": 0}
    _assert_ann_unreadable(api, domain, storage_keys)
    bob = api.get(f"/v3/{domain}/events", params={"recipient": BOB}).json()["items"]
    assert sorted(e["event"] for e in bob) == ["accepted", "delivered"]
    assert all(ANN not in json.dumps(e) for e in bob)  # the To header: redacted at once

    clock.advance(60)  # nothing pending: the next look writes nothing and deletes nothing
    assert asyncio.run(runner.run_once()) == 0


def test_a_process_that_dies_before_or_during_the_job_loses_nothing(  # type: ignore[no-untyped-def]
        api, services, account, domain) -> None:
    _mail(api, services, domain)
    assert api.delete("/v1/privacy/recipients/ann%40example.org").status_code == 200
    # The process dies before the job ran: a new one starts on the same database.
    restarted = Services.start(services.settings, services.clock)
    try:
        assert _ann_rows(restarted, account[0])["pending"] == 1
        # Its first run is stopped after one batch (of one row of each kind).
        batches = iter([False, True])
        deleted = erasure.run_pending(restarted.db, restarted.clock, batch=1,
                                      stopping=lambda: next(batches))
        assert deleted == 4  # a copy, an event, a body emptied and its key's row
        partial = _ann_rows(restarted, account[0])
        assert partial["pending"] == 1 and partial["events"] == 7 and partial["copies"] == 3
        assert partial["erased keys"] == 1 + 3
        # The next run finishes it.
        assert erasure.run_pending(restarted.db, restarted.clock, batch=2) > 0
        assert _ann_rows(restarted, account[0]) == {
            "events": 0, "copies": 0, "erased keys": 0, "bodies": 0, "pending": 0}
    finally:
        restarted.close()


def test_a_backup_from_before_the_erasure_restores_unreadable_and_the_job_deletes_the_rows(  # type: ignore[no-untyped-def]
        api, services, account, domain, tmp_path) -> None:
    storage_keys = _mail(api, services, domain)
    path = tmp_path / "before-erasure.zip"
    create_backup(services.db, keyring(services), path)
    assert api.delete("/v1/privacy/recipients/ann%40example.org").status_code == 200
    erasure.run_pending(services.db, services.clock)
    assert _ann_rows(services, account[0])["events"] == 0

    restored = restore_backup(services.db, keyring(services), services.settings.data_dir,
                              path, replace=True)
    assert restored.erasures == 1 and restored.deletion_pending == 1
    assert restored.keys_destroyed == 5  # hers and her messages': the rows stay a while
    # At once: her keys gone again (the ledger replayed), her rows back but unreadable.
    _assert_ann_unreadable(api, domain, storage_keys)
    rows = _ann_rows(services, account[0])
    assert rows["events"] == 8 and rows["pending"] == 1 and rows["erased keys"] == 5

    erasure.run_pending(services.db, services.clock)
    assert _ann_rows(services, account[0]) == {
        "events": 0, "copies": 0, "erased keys": 0, "bodies": 0, "pending": 0}
    _assert_ann_unreadable(api, domain, storage_keys)
