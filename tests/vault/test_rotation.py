"""Master-key rotation: everything sealed before reads back after, even after a crash midway."""

from __future__ import annotations

import base64
import json
import secrets

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, select, text, update

from mailhaven.domains.keys import private_key
from mailhaven.domains.models import DkimKey
from mailhaven.models import metadata
from mailhaven.services import Services
from mailhaven.vault import Keyring, Vault, VaultKey, rotation
from mailhaven.vault.keyring import write_keyring
from mailhaven.webhooks.service import signing_key
from tests.delivery.dkim_check import from_records, verify_each
from tests.delivery.sinks import send
from tests.support import LiveServer, Sink, deliver_due
from tests.test_cli import _cli

HEADER_V2 = bytes([0x4B, 0, 2])  # a blob wrapped under KEK version 2


def _world(api, services, account, domain) -> str:  # type: ignore[no-untyped-def]
    """Data under every kind of wrapped key; returns the webhook signing key."""
    with services.db.transaction() as session:
        signing = signing_key(session, services.vault, account[0])
    send(api, domain, {"to": "Ann <ann@example.org>, bob@example.org", "subject": "Before"})
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 2
    return signing


def _raw(services, query: str) -> dict:  # type: ignore[no-untyped-def]
    with services.db.engine.connect() as conn:
        return {k: bytes(v) for k, v in conn.execute(text(query))}


def _reads_everything(services, account, domain, signing: str, subject: str) -> None:  # type: ignore[no-untyped-def]
    """What another process, started with the key file as it is now, can read and do."""
    fresh = Services.start(services.settings, services.clock)
    try:
        with LiveServer(fresh) as live, live.client(account[1]) as api:
            items = api.get(f"/v3/{domain}/events",
                            params={"recipient": "ann@example.org"}).json()["items"]
            assert [e["event"] for e in items][-2:] == ["delivered", "accepted"]
            assert items[-1]["message"]["headers"]["subject"] == "Before"
            stored = api.get(httpx.URL(items[-1]["storage"]["url"]).path)
            assert stored.status_code == 200 and stored.json()["body-plain"].strip() == "Hi Ann"
            records = api.get(f"/v3/domains/{domain}").json()["sending_dns_records"]
            send(api, domain, {"to": "carol@example.org", "subject": subject})
            with Sink() as sink:
                deliver_due(fresh, sink)  # signs with the DKIM key, opens the new subject key
        [got] = sink.received
        assert [ok for _, _, ok in verify_each(got.data, from_records(records))] == [True]
        with fresh.db.sessions() as session:
            assert signing_key(session, fresh.vault, account[0]) == signing
            for key in session.scalars(select(DkimKey)):
                assert private_key(fresh.vault, key).startswith(b"-----BEGIN")
    finally:
        fresh.close()


def _make_legacy(services, key_id: str) -> None:  # type: ignore[no-untyped-def]
    """Re-store one data key as keys were wrapped before KEK versions: no header."""
    kek = Keyring.from_json(services.settings.resolved_master_key_file.read_text()).kek
    with services.db.transaction() as session:
        row = session.get(VaultKey, key_id)
        raw = services.vault._unwrap(key_id, row.wrapped_key)[1]
        nonce = secrets.token_bytes(12)
        session.execute(update(VaultKey).where(VaultKey.id == key_id).values(
            wrapped_key=nonce + AESGCM(kek).encrypt(nonce, raw, key_id.encode())))


def test_every_secret_the_master_key_wraps_declares_its_label() -> None:
    """A non-personal binary column is a key or secret wrapped by the master key: unless it
    names its label, a rotation would skip it and lose it with the old KEK."""
    secrets_ = {f"{t.name}.{c.name}" for t in metadata.sorted_tables for c in t.columns
                if isinstance(c.type, LargeBinary)
                and c.info["classification"].category == "non-personal"}
    # One personal value is wrapped too: an Article 19 notice's subject hash, kept (sealed)
    # only until its POST is settled, after the subject's own key was destroyed.
    transient = {"disclosure_notifications.subject_sealed"}
    assert {w.name for w in rotation.wrapped_columns(metadata)} - transient == secrets_ == {
        "accounts.signing_key_sealed", "disclosures.signing_key_sealed", "dkim_keys.private_key",
        "subprocessors.signing_key_sealed",
        "vault_keys.wrapped_key"}


def test_data_sealed_before_a_rotation_reads_back_after_it(api, services, account,
                                                           domain) -> None:
    signing = _world(api, services, account, domain)
    key_file = services.settings.resolved_master_key_file
    before = Keyring.from_json(key_file.read_text())
    payloads = _raw(services, "SELECT event_id, payload FROM events")
    bodies = _raw(services, "SELECT id, content_sealed FROM messages")
    wrapped = _raw(services, "SELECT id, wrapped_key FROM vault_keys")

    done = rotation.rotate(services.db, services.vault, key_file,
                           rotation.wrapped_columns(metadata))

    after = Keyring.from_json(key_file.read_text())
    assert list(after.keks) == [2] and after.kek != before.kek
    assert base64.b64encode(before.kek).decode() not in key_file.read_text()
    assert after.index_key == before.index_key  # the blind index is not rotated
    # Only wrapped keys changed: no data was re-encrypted.
    assert _raw(services, "SELECT event_id, payload FROM events") == payloads
    assert _raw(services, "SELECT id, content_sealed FROM messages") == bodies
    rewrapped = _raw(services, "SELECT id, wrapped_key FROM vault_keys")
    assert rewrapped.keys() == wrapped.keys()
    assert all(rewrapped[k] != wrapped[k] and rewrapped[k].startswith(HEADER_V2)
               for k in wrapped)
    secrets_ = {**_raw(services, "SELECT id, private_key FROM dkim_keys"),
                **_raw(services, "SELECT id, signing_key_sealed FROM accounts")}
    assert all(blob.startswith(HEADER_V2) for blob in secrets_.values())
    assert done.rewrapped == len(wrapped) + len(secrets_)

    _reads_everything(services, account, domain, signing, "After, elsewhere")
    # The process that was running all along took up the new key from the file.
    send(api, domain, {"to": "dave@example.org", "subject": "After, here"})
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 1
    _reads_everything(services, account, domain, signing, "After, elsewhere again")


def test_an_interrupted_rotation_still_reads_everything_and_a_rerun_finishes_it(
        api, services, account, domain, settings) -> None:
    signing = _world(api, services, account, domain)
    key_file = settings.resolved_master_key_file
    wrapped = _raw(services, "SELECT id, wrapped_key FROM vault_keys")
    _make_legacy(services, sorted(wrapped)[-1])  # a row from before KEK versions
    old = Keyring.from_json(key_file.read_text())
    columns = rotation.wrapped_columns(metadata)

    rotation.begin(key_file)
    services.vault.reload()
    part = rotation.rewrap(services.db, services.vault, columns, batch=2, limit=3)
    assert part.rewrapped == 3  # ... and the process dies here

    midway = Keyring.from_json(key_file.read_text())
    assert sorted(midway.keks) == [1, 2] and midway.keks[1] == old.kek
    blobs = _raw(services, "SELECT id, wrapped_key FROM vault_keys").values()
    assert 0 < sum(b.startswith(HEADER_V2) for b in blobs) < len(blobs)
    _reads_everything(services, account, domain, signing, "Midway")

    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    rerun = _cli(env, "vault", "rotate-master-key", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["state"] == "rotated"
    final = Keyring.from_json(key_file.read_text())
    assert list(final.keks) == [2] and final.kek == midway.keks[2]  # the same new key
    assert all(b.startswith(HEADER_V2) for b in _raw(
        services, "SELECT id, wrapped_key FROM vault_keys").values())
    _reads_everything(services, account, domain, signing, "After")


def test_a_blob_under_a_kek_the_file_does_not_hold_opens_nowhere(tmp_path) -> None:
    path = tmp_path / "master.key"
    first = Keyring.generate()
    write_keyring(path, first)
    vault = Vault(first, key_file=path)
    sealed = vault.seal_secret("label", b"secret")
    rotated = first.with_new_kek().without_old_keks()
    write_keyring(path, rotated)
    assert vault.reload() and not vault.reload()  # a process takes up the file once it changed
    with pytest.raises(InvalidTag):  # the old KEK is gone: what it alone wrapped is gone too
        vault.open_secret("label", sealed)
    assert vault.open_secret("label", vault.seal_secret("label", b"new")) == b"new"
    write_keyring(path, Keyring({9: secrets.token_bytes(32)}, 9, secrets.token_bytes(32)))
    with pytest.raises(RuntimeError, match="blind-index key changed"):
        vault.seal_secret("label", b"x")


def test_a_rotation_leaves_destroyed_keys_destroyed(services, account) -> None:
    with services.db.transaction() as session:
        content = services.vault.new_content_key(session, account[0])
        subject = services.vault.subject(session, account[0], "ann@example.org")
        services.vault.destroy(session, [content.id, subject.id])
    key_file = services.settings.resolved_master_key_file

    done = rotation.rotate(services.db, services.vault, key_file,
                           rotation.wrapped_columns(metadata))

    assert done.rewrapped > 0
    wrapped = _raw(services, "SELECT id, wrapped_key FROM vault_keys")
    assert wrapped[content.id] == wrapped[subject.id] == b""  # nothing to re-wrap, no key made
    assert all(blob.startswith(HEADER_V2) for k, blob in wrapped.items()
               if k not in (content.id, subject.id))
