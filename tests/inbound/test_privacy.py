"""Received mail is personal data from its first byte: sealed at rest, never in a log line,
exported for its sender, and gone from every column and file once the sender is erased."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from mailhaven.exports.service import export_recipient
from mailhaven.messages.models import Message
from mailhaven.privacy import erasure
from mailhaven.privacy.erasure import erase_recipient
from mailhaven.vault.models import VaultKey
from tests.inbound.conftest import message, process_all, rows, stored_mime

SENDER = "zq9.sender@far-away-zq9.test"
NAME = "Zq9Ottoline Sender"
SUBJECT = "Zq9subject: my tax number 4711"
BODY = "zq9body: my tax number is 4711-zq9"
MESSAGE_ID = "zq9-order@far-away-zq9.test"
PERSONAL = (SENDER, "zq9.sender", "far-away-zq9", NAME, SUBJECT, BODY, MESSAGE_ID)


def _needles(value: str) -> set[bytes]:
    forms = {value, value.lower(), value.upper()}
    return {f.encode() for f in forms} | {json.dumps(f)[1:-1].encode() for f in forms}


def _logged(caplog) -> str:  # type: ignore[no-untyped-def]
    """Every log line of the test, its set-up (where the mail came in) included."""
    return "\n".join(r.getMessage() for when in ("setup", "call")
                     for r in caplog.get_records(when))  # type: ignore[arg-type]


def _found(dump) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {value: dump.holding(needle) for value in PERSONAL
            for needle in _needles(value) if dump.holding(needle)}


@pytest.fixture
def quiet_library() -> Iterator[None]:
    """As `mailhaven` sets it (cli.main): aiosmtpd's per-command chatter, which names
    addresses, is not logged."""
    chatter = logging.getLogger("mail.log")
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    yield
    chatter.setLevel(level)


@pytest.fixture
def received(quiet_library, mx, services, domain, caplog) -> str:
    caplog.set_level(logging.DEBUG)
    mx.send(SENDER, [f"support@{domain}", f"sales@{domain}"],
            message(sender=f"{NAME} <{SENDER}>", subject=SUBJECT, body=BODY,
                    message_id=f"<{MESSAGE_ID}>"))
    process_all(services)
    return rows(services)[0].message_id


def test_received_mail_is_sealed_at_rest_and_in_no_log(received, services, raw_dump,
                                                       caplog) -> None:
    assert SUBJECT.encode() in stored_mime(services, received)  # it is there, sealed
    dump = raw_dump()
    assert dump.holding(b"mg.acme.test")  # the scan sees what is kept in clear
    assert _found(dump) == {}
    logged = _logged(caplog)
    assert '"kind": "mx"' in logged and '"kind": "inbound"' in logged  # the scan sees logs
    for value in PERSONAL:
        assert value.lower() not in logged.lower()


def test_a_senders_export_lists_the_mail_they_sent(received, services, account,
                                                   tmp_path, domain) -> None:
    export_recipient(services.db, services.vault, account[0], SENDER, tmp_path / "x.zip",
                     clock=services.clock)
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        document = json.loads(archive.read("export.json"))
    mail = document["categories"]["received_mail"]
    assert [(m["role"], m["address"], m["domain"]) for m in mail] == [
        ("sender", SENDER, domain), ("sender", SENDER, domain)]


def test_erasing_the_sender_leaves_nothing_of_them_anywhere(received, services, account,
                                                            raw_dump, caplog) -> None:
    with services.db.transaction() as session:
        erase_recipient(session, services.vault, account[0], SENDER,
                        now=services.clock.now(), data_dir=services.settings.data_dir)
    assert rows(services) == []
    with services.db.sessions() as session:
        stored = session.scalar(select(Message).where(Message.id == received))
        assert stored is not None and stored.content_sealed is None  # the body is shredded
    # nothing readable, not even sealed under a key that still exists: the events of the
    # other recipients lost the From
    with services.db.sessions() as session:
        from mailhaven.events.models import Event
        from mailhaven.events.service import open_payload
        documents = open_payload(session, services.vault, list(session.scalars(select(Event))))
    assert documents and all(SENDER not in json.dumps(d) for d in documents)
    assert _found(raw_dump()) == {}
    for value in PERSONAL:
        assert value.lower() not in _logged(caplog).lower()


def test_erasing_a_recipient_removes_the_mail_they_received(received, services, account,
                                                            domain) -> None:
    with services.db.transaction() as session:
        erase_recipient(session, services.vault, account[0], f"support@{domain}",
                        now=services.clock.now(), data_dir=services.settings.data_dir)
    assert rows(services) == []
    with services.db.sessions() as session:
        assert session.get(Message, received).content_sealed is None


def test_erased_in_the_background_the_senders_mail_is_unreadable_then_shredded(
        received, services, account, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A large subject's rows go in the background: the received mail's body is found again
    by the ledger's storage keys (its content key is marked in no index)."""
    monkeypatch.setattr(erasure, "INLINE_ROWS", 0)
    with services.db.sessions() as session:
        key_id = session.get(Message, received).content_key_id
    with services.db.transaction() as session:
        done = erase_recipient(session, services.vault, account[0], SENDER,
                               now=services.clock.now(), data_dir=services.settings.data_dir)
    assert done.counts.deletion == erasure.SCHEDULED and received in done.storage_keys
    with services.db.sessions() as session:
        assert session.get(Message, received).content_sealed is not None  # still there ...
        assert services.vault.keys(session, [key_id]) == {}  # ... and unreadable
    erasure.run_pending(services.db, services.clock)
    with services.db.sessions() as session:
        assert session.get(Message, received).content_sealed is None
        assert session.get(VaultKey, key_id) is None
