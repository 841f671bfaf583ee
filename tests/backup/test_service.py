"""A backup restores what the API showed, into either database, and never brings back a
subject erased after it was taken (SPEC N9, issue 4 item 12)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select
from tests.backup.support import (
    ANN,
    BOB,
    BODY,
    api_view,
    backup_bytes,
    database_bytes,
    keyring,
    send_and_deliver,
)
from tests.support import LiveServer, Sink, deliver_due

from mailhaven.accounts.models import Account
from mailhaven.backup.archive import ArchiveError
from mailhaven.backup.service import BackupError, create_backup, restore_backup
from mailhaven.events.models import Event
from mailhaven.privacy.erasure import LEDGER_FILE
from mailhaven.privacy.models import Erasure
from mailhaven.services import Services
from mailhaven.vault.models import VaultKey


@contextmanager
def _restored(services: Services, url: str, api_key: str) -> Iterator:  # type: ignore[type-arg]
    """The installation after a restore into `url`: same data dir and key, other database."""
    target = Services.start(services.settings.with_(database_url=url), services.clock)
    try:
        with LiveServer(target) as live, live.client(api_key) as api:
            yield target, api
    finally:
        target.close()


def _other(backend: str) -> str:
    return "postgresql" if backend == "sqlite" else "sqlite"


@pytest.mark.parametrize("into", ["same", "other"])
def test_a_restore_into_an_empty_database_shows_the_same_data_and_sends_on(
        api, services, domain, account, empty_database, tmp_path, backend, into) -> None:
    send_and_deliver(api, services, domain)
    before = api_view(api, domain)
    path = tmp_path / "mailhaven.zip"
    manifest = create_backup(services.db, keyring(services), path)
    assert {t.name: t.rows for t in manifest.tables}["events"] == len(before["events"])

    url = empty_database(backend if into == "same" else _other(backend))
    with _restored(services, url, account[1]) as (target, restored_api):
        restored = restore_backup(target.db, keyring(services), target.settings.data_dir, path)
        assert restored.tables["events"] == len(before["events"]) and restored.erasures == 0
        assert api_view(restored_api, domain) == before

        # New rows get new ids: on PostgreSQL the sequences were moved past the restored ones.
        sent = restored_api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": "carol@example.net", "subject": "Hi", "text": "x"})
        assert sent.status_code == 200, sent.text
        with Sink() as sink:
            deliver_due(target, sink)
        assert [r.rcpt_tos for r in sink.received] == [["carol@example.net"]]
        events = restored_api.get(f"/v3/{domain}/events", params={
            "recipient": "carol@example.net"}).json()["items"]
        assert [e["event"] for e in events] == ["delivered", "accepted"]
        with target.db.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Event)) == \
                len(before["events"]) + 2


def _ann_keys(services: Services, account_id: str) -> set[str]:
    index = services.vault.blind_index(account_id, ANN)
    with services.db.sessions() as session:
        return set(session.scalars(select(VaultKey.id).where(VaultKey.blind_index == index)))


@pytest.mark.parametrize("ledger", ["table-and-file", "table-only", "file-only"])
def test_a_backup_from_before_an_erasure_restores_with_the_subject_still_erased(
        api, services, domain, account, empty_database, tmp_path, backend, ledger) -> None:
    send_and_deliver(api, services, domain)
    bob_before = api.get(f"/v3/{domain}/events", params={"recipient": BOB}).json()["items"]
    ann_keys = _ann_keys(services, account[0])
    assert ann_keys
    path = tmp_path / "before-erasure.zip"
    create_backup(services.db, keyring(services), path)
    assert all(k.encode() in backup_bytes(path) for k in ann_keys)  # her data, as ciphertext

    erased = api.delete("/v1/privacy/recipients/ann%40example.org")
    assert erased.status_code == 200, erased.text

    if ledger == "table-only":
        (services.settings.data_dir / LEDGER_FILE).unlink()
    replace = ledger != "file-only"  # else the database is lost: restore into a new one
    target = services if replace else Services.start(
        services.settings.with_(database_url=empty_database(backend)), services.clock)
    try:
        restored = restore_backup(target.db, keyring(services), target.settings.data_dir,
                                  path, replace=replace)
        assert restored.erasures == 1
        assert restored.keys_destroyed >= 2 and restored.events_removed >= 2  # key, body key
        with LiveServer(target) as live, live.client(account[1]) as restored_api:
            _assert_ann_erased_and_bob_intact(restored_api, target, domain, bob_before)
        assert ann_keys.isdisjoint(_ann_keys(target, account[0]))  # (a new send made a new one)
        with target.db.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Erasure)) == 1
        assert (services.settings.data_dir / LEDGER_FILE).read_text().count("\n") == 1
        raw = database_bytes(target) + backup_bytes(path)
        assert ANN.encode() not in raw and BODY.encode() not in raw
        assert domain.encode() in raw  # the search does see what is stored in clear
    finally:
        if target is not services:
            target.close()


def _assert_ann_erased_and_bob_intact(api, services: Services, domain: str,  # type: ignore[no-untyped-def]
                                      bob_before: list) -> None:
    events = api.get(f"/v3/{domain}/events", params={"limit": 300}).json()["items"]
    assert events and {e["recipient"] for e in events} == {BOB}
    assert ANN not in api.get(f"/v3/{domain}/events").text
    assert api.get(f"/v3/{domain}/events", params={"recipient": ANN}).json()["items"] == []
    for kind in ("bounces", "unsubscribes"):
        assert ANN not in api.get(f"/v3/{domain}/{kind}/ann%40example.org").text
        assert ANN not in api.get(f"/v3/{domain}/{kind}").text
    bob = api.get(f"/v3/{domain}/events", params={"recipient": BOB}).json()["items"]
    assert [(e["id"], e["event"]) for e in bob] == [(e["id"], e["event"]) for e in bob_before]
    # Her unsubscribe stays as a keyed index: she is still never mailed.
    sent = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": ANN, "subject": "Again", "text": "Hi"})
    assert sent.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
    failed = api.get(f"/v3/{domain}/events", params={"event": "failed"}).json()["items"]
    assert [e["reason"] for e in failed] == ["suppress-unsubscribe"]


def test_a_restore_refuses_a_database_that_is_not_empty(api, services, domain,
                                                        tmp_path) -> None:
    send_and_deliver(api, services, domain)
    path = tmp_path / "mailhaven.zip"
    create_backup(services.db, keyring(services), path)
    before = api_view(api, domain)
    with pytest.raises(BackupError, match="not empty; pass --replace"):
        restore_backup(services.db, keyring(services), services.settings.data_dir, path)
    assert api_view(api, domain) == before
    with pytest.raises(BackupError, match="exists; pass --force"):
        create_backup(services.db, keyring(services), path)


def test_a_damaged_backup_changes_nothing_even_with_replace(api, services, domain,
                                                           tmp_path) -> None:
    send_and_deliver(api, services, domain)
    path = tmp_path / "mailhaven.zip"
    create_backup(services.db, keyring(services), path)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(damaged, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            new.writestr(name, data.split(b"\n", 1)[1] if name == "tables/events.jsonl" else data)
    before = api_view(api, domain)
    with pytest.raises(ArchiveError, match="events has 5 rows, its manifest says 6"):
        restore_backup(services.db, keyring(services), services.settings.data_dir, damaged,
                       replace=True)
    assert api_view(api, domain) == before  # the wipe was rolled back with the load


def test_a_backup_from_before_an_account_deletion_restores_with_the_account_deleted(
        api, services, domain, account, tmp_path) -> None:
    send_and_deliver(api, services, domain)
    path = tmp_path / "before-deletion.zip"
    create_backup(services.db, keyring(services), path)
    deleted = api.delete("/v1/privacy/account", params={"confirm": account[0]})
    assert deleted.status_code == 200, deleted.text

    restored = restore_backup(services.db, keyring(services), services.settings.data_dir,
                              path, replace=True)
    assert restored.erasures == 1 and restored.domains_removed == 1
    services.key_cache.forget_account(account[0])
    assert api.get("/v3/domains").status_code == 401  # its API keys stay revoked
    with services.db.sessions() as session:
        row = session.get(Account, account[0])
        assert row.deleted_at is not None and row.name_sealed is None
        assert row.legal_hold == "privacy-accountability"


def test_a_backup_is_one_snapshot_even_while_mail_is_accepted(api, services, domain,
                                                              tmp_path) -> None:
    send_and_deliver(api, services, domain)
    events = len(api_view(api, domain)["events"])
    sent: list[int] = []

    def send_midway(table: str, done: int, total: int) -> None:
        if table == "accounts" and not sent:  # tables later in the order are still unread
            sent.append(api.post(f"/v3/{domain}/messages", data={
                "from": f"news@{domain}", "to": BOB, "subject": "Late", "text": "x"},
            ).status_code)

    manifest = create_backup(services.db, keyring(services), tmp_path / "b.zip",
                             progress=send_midway)
    assert sent == [200] and len(api_view(api, domain)["events"]) == events + 1
    rows = {t.name: t.rows for t in manifest.tables}
    assert rows["events"] == events and rows["messages"] == 2
