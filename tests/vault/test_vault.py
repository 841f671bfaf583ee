"""The vault: sealing, blind indexes, subject keys, and the key file."""

from __future__ import annotations

import stat
import threading

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select

from mailhaven.accounts.service import create_account
from mailhaven.vault import Keyring, Vault, VaultKey, load_or_create_keyring


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
