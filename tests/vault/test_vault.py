"""The vault: sealing, blind indexes, subject keys, and the key file."""

from __future__ import annotations

import stat
import threading

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select

from mailhaven.accounts.service import create_account
from mailhaven.vault import Keyring, Vault, VaultKey, load_or_create_keyring
from mailhaven.vault.models import DESTROYED, ERASED


def test_sealed_values_open_only_under_their_key_and_context(services, account) -> None:
    vault = services.vault
    with services.db.transaction() as session:
        keys = vault.subjects(session, account[0], ["ann@example.org", "bob@example.org"])
    ann, bob = keys["ann@example.org"], keys["bob@example.org"]
    sealed = vault.seal_text(ann, "Ann Smith", "profile.name")
    assert b"Ann" not in sealed
    assert vault.open_text(ann, sealed, "profile.name") == "Ann Smith"
    with pytest.raises(InvalidTag):
        vault.open_text(bob, sealed, "profile.name")
    with pytest.raises(InvalidTag):
        vault.open_text(ann, sealed, "profile.email")


def test_a_subject_is_found_again_case_insensitively_and_only_in_its_account(
        services, account) -> None:
    vault = services.vault
    with services.db.transaction() as session:
        other = create_account(session, vault, name="Other", email="o@other.test").account_id
        first = vault.subjects(session, account[0], ["Ann@Example.org"])["ann@example.org"]
        again = vault.subjects(session, account[0], [" ann@example.ORG "])["ann@example.org"]
        elsewhere = vault.subjects(session, other, ["ann@example.org"])["ann@example.org"]
        assert vault.find_subject(session, account[0], "ANN@example.org").id == first.id
    assert first.id == again.id
    assert elsewhere.id != first.id
    assert vault.blind_index(account[0], "ann@example.org") != vault.blind_index(
        other, "ann@example.org")


def test_concurrent_writers_get_one_key_per_subject(services, account) -> None:
    addresses = [f"user{i}@example.org" for i in range(50)]
    results: list[dict[str, str]] = []

    def claim() -> None:
        with services.db.transaction() as session:
            keys = services.vault.subjects(session, account[0], addresses)
            results.append({a: k.id for a, k in keys.items()})

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    with services.db.sessions() as session:
        count = session.scalar(select(func.count()).select_from(VaultKey).where(
            VaultKey.purpose == "subject", VaultKey.blind_index.is_not(None),
            VaultKey.account_id == account[0]))
    assert count == 50 + 1  # and the account holder


def test_data_keys_are_stored_only_wrapped(services, account) -> None:
    with services.db.transaction() as session:
        key = services.vault.subjects(session, account[0], ["ann@example.org"])[
            "ann@example.org"]
    other_vault = Vault(Keyring.generate())
    with pytest.raises(InvalidTag):
        other_vault.open(key, services.vault.seal(key, b"x"))


def test_the_key_file_is_created_once_and_private(tmp_path) -> None:
    path = tmp_path / "keys" / "master.key"
    first = load_or_create_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_keyring(path) == first
    assert first.kek != first.index_key


def _row(services, key_id: str) -> dict:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return dict(session.execute(select(VaultKey.__table__).where(
            VaultKey.id == key_id)).one()._mapping)


def test_a_destroyed_key_opens_nothing_and_its_address_gets_a_new_key(services,
                                                                      account) -> None:
    vault = services.vault
    with services.db.transaction() as session:
        subject = vault.subject(session, account[0], "ann@example.org")
        content = vault.new_content_key(session, account[0])
    sealed = {k.id: vault.seal_text(k, "Ann's statement", "m") for k in (subject, content)}
    before = _row(services, content.id)
    with services.db.transaction() as session:
        assert vault.destroy(session, [subject.id, content.id]) == 2
        assert vault.destroy(session, [subject.id, content.id]) == 0  # destroyed already

    shredded, erased = _row(services, content.id), _row(services, subject.id)
    assert shredded["wrapped_key"] == erased["wrapped_key"] == DESTROYED
    # A content key's indexed columns keep their values (what lets PostgreSQL's UPDATE of
    # 50,000 of them be HOT); the subject key loses its blind index and is ERASED.
    indexed = {c.name for index in VaultKey.__table__.indexes | {
        c for c in VaultKey.__table__.constraints if hasattr(c, "columns")}
        for c in index.columns}
    assert indexed >= {"account_id", "purpose", "blind_index"}
    assert {c: shredded[c] for c in indexed} == {c: before[c] for c in indexed}
    assert erased["purpose"] == ERASED and erased["blind_index"] is None

    fresh = Vault(Keyring.from_json(  # another process: nothing unwrapped in memory
        services.settings.resolved_master_key_file.read_text()))
    with services.db.transaction() as session:
        for reader in (vault, fresh):
            assert reader.keys(session, sealed) == {}
            assert reader.openers(session, sealed) == {}
        assert vault.find_subject(session, account[0], "ann@example.org") is None
        again = vault.subject(session, account[0], "Ann@example.org")
    assert again.id != subject.id and again.wrapped_key != DESTROYED
    with pytest.raises(InvalidTag):
        fresh.open_text(again, sealed[subject.id], "m")
