"""Erasing a recipient who received mail, opened it and unsubscribed (issue 4 acceptance)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

ANN, BOB = "ann@example.org", "bob@example.org"
BODY = "Quarterly-statement-7f3a9 for your eyes only"


def _everything_the_api_says(api, domain: str, storage_key: str) -> str:  # type: ignore[no-untyped-def]
    """Every API answer a customer could ask for about this domain, as one text."""
    answers = [api.get(f"/v3/{domain}/events", params={"ascending": "yes",
                                                       "limit": 300}).text]
    for kind in ("bounces", "unsubscribes", "complaints", "whitelists"):
        answers.append(api.get(f"/v3/{domain}/{kind}").text)
        answers.append(api.get(f"/v3/{domain}/{kind}/ann%40example.org").text)
        answers.append(api.get(f"/v3/{domain}/{kind}", params={"term": "ann"}).text)
    answers.append(api.get(f"/v3/domains/{domain}/messages/{storage_key}").text)
    answers.append(api.get("/v1/privacy/requests").text)
    answers.append(api.get("/v1/privacy/consents", params={"email": ANN}).text)
    answers.append(api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").text)
    answers.append(api.get(f"/v3/{domain}/tags").text)
    return "\n".join(answers)


def test_an_erased_recipient_is_gone_everywhere_and_still_never_mailed(
        api, live, services, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/open", data={"active": "yes"})
    api.put(f"/v3/domains/{domain}/tracking/unsubscribe", data={"active": "yes"})
    tracked = dataclasses.replace(services, settings=services.settings.with_(
        public_url=live.base_url))
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v4/domains/{domain}/webhooks", data={
            "url": receiver.url, "event_types": ["delivered", "opened", "unsubscribed"]})
        sent = api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": [ANN, BOB], "subject": "Statement",
            "text": BODY, "html": f"<p>{BODY}</p>", "o:tag": "statements"})
        storage_key = None
        deliver_due(tracked, sink)
        to_ann = next(r for r in sink.received if r.rcpt_tos == [ANN])
        html = to_ann.message.get_body(("html",)).get_content()
        [pixel] = re.findall(r'<img[^>]+src="([^"]+)"', html)
        assert api.get(urlsplit(pixel).path).status_code == 200  # ann opens it
        one_click = to_ann.message["List-Unsubscribe"].strip("<>")
        assert api.post(urlsplit(one_click).path,
                        content=b"List-Unsubscribe=One-Click").status_code == 200
        send_webhooks(services)
        events = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
        storage_key = events[0]["storage"]["key"]
        assert ANN in _everything_the_api_says(api, domain, storage_key)  # before: it's there
        before = _backup_of(services, "before")

        erased = api.delete("/v1/privacy/recipients/ann%40example.org")
        assert erased.status_code == 200, erased.text
        assert erased.json()["record"]["counts"]["events"] >= 4  # accepted…unsubscribed
        assert erased.json()["signature"]

        said = _everything_the_api_says(api, domain, storage_key)
        assert ANN not in said and BODY not in said
        bob_events = [e for e in api.get(f"/v3/{domain}/events").json()["items"]]
        assert bob_events and {e["recipient"] for e in bob_events} == {BOB}
        assert all(ANN not in json.dumps(e) for e in bob_events)  # To header redacted
        assert api.get(f"/v3/domains/{domain}/messages/{storage_key}").status_code == 404
        after = _backup_of(services, "after")

        # Database (SQLite file and WAL), ledger, audit anchor, both backup archives.
        files = _files(services.settings.data_dir)
        assert {before, after} <= set(files)
        for path in files:
            for blob in _contents(path):
                assert ANN.encode() not in blob, path
                assert BODY.encode() not in blob, path

        sent = api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": ANN, "subject": "Again", "text": "Hi"})
        assert sent.status_code == 200
        delivered_before = len(sink.received)
        deliver_due(tracked, sink)
    assert len(sink.received) == delivered_before  # never mailed again
    failed = api.get(f"/v3/{domain}/events", params={"event": "failed"}).json()["items"]
    assert [(e["reason"], e["delivery-status"]["code"]) for e in failed] == [
        ("suppress-unsubscribe", 605)]


def _files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file()]


def _backup_of(services, name: str) -> Path:  # type: ignore[no-untyped-def]
    """A `mailhaven backup create` archive in the data directory."""
    from mailhaven.backup.service import create_backup
    from mailhaven.vault.keyring import load_or_create_keyring

    target = services.settings.data_dir / f"backup-{name}.zip"
    create_backup(services.db, load_or_create_keyring(
        services.settings.resolved_master_key_file), target)
    return target


def _contents(path: Path) -> list[bytes]:
    """A file's bytes, and every member of it decompressed if it is a zip archive."""
    raw = path.read_bytes()
    if not zipfile.is_zipfile(path):
        return [raw]
    with zipfile.ZipFile(path) as archive:
        return [raw, *(archive.read(name) for name in archive.namelist())]


def test_erasing_a_subject_with_more_copies_than_a_chunk(  # type: ignore[no-untyped-def]
        api, services, account, domain, monkeypatch) -> None:
    """Erasure's IN lists go in chunks (100,000 copies exceed the drivers' parameter limits):
    every chunk's messages, copies, events and keys go; the other recipient's stay."""
    from sqlalchemy import func, select

    from mailhaven.delivery.models import Delivery
    from mailhaven.events.models import Event
    from mailhaven.messages.models import Message
    from mailhaven.privacy import erasure
    from mailhaven.vault.models import VaultKey

    monkeypatch.setattr(erasure, "CHUNK", 2)
    for i in range(5):
        sent = api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": ANN, "subject": f"Statement {i}", "text": BODY})
        assert sent.status_code == 200, sent.text
    api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": BOB, "subject": "Bob's own", "text": BODY})
    with services.db.sessions() as session:
        ann_key = services.vault.find_subject(session, account[0], ANN)
        assert ann_key is not None
        content_keys = set(session.scalars(select(Message.content_key_id)))

    erased = api.delete("/v1/privacy/recipients/ann%40example.org")
    assert erased.status_code == 200, erased.text
    assert erased.json()["record"]["counts"] == {
        "events": 5, "cancelled": 5, "copies": 5, "messages": 5, "deletion": "done"}

    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1  # bob's
        bob = session.scalars(select(Message).where(Message.content_sealed.is_not(None))).all()
        assert [m.id for m in bob] == list(session.scalars(select(Delivery.message_id)))
        left = set(session.scalars(select(VaultKey.id)))
        assert content_keys - left == content_keys - {bob[0].content_key_id}  # 5 destroyed
        assert ann_key.id not in left
        events = api.get(f"/v3/{domain}/events").json()["items"]
        assert [e["recipient"] for e in events] == [BOB]
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def test_an_address_with_a_percent_sign_is_decoded_once(api, domain) -> None:
    """`pct%41x@example.com` is sent as `pct%2541x%40example.com`: erasing it must not
    erase `pctax@example.com` (issue 10, finding 5), and GET finds the same subject."""
    percent, other = "pct%41x@example.com", "pctax@example.com"
    for to in (percent, other):
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": to, "subject": "Hi", "text": "hi"}
        ).status_code == 200
    path = "/v1/privacy/recipients/pct%2541x%40example.com"
    exported = api.get(path)
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert json.loads(archive.read("export.json"))["subject"]["address"] == percent

    erased = api.delete(path)
    assert erased.status_code == 200, erased.text
    assert erased.json()["record"]["counts"]["events"] == 1
    recipients = [e["recipient"] for e in api.get(f"/v3/{domain}/events").json()["items"]]
    assert recipients == [other]
    assert api.get(path).json() == {"message": "Recipient not found"}
    assert api.get("/v1/privacy/recipients/pctax%40example.com").status_code == 200


def _erase_ann_while_bobs_copy_waits(api, clock, domain, sent) -> str:  # type: ignore[no-untyped-def]
    """Send (scheduled, so Bob's copy is still queued), erase Ann: the body is kept for Bob.
    The message's storage key."""
    assert sent.status_code == 200, sent.text
    [accepted, *_] = api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]
    erased = api.delete("/v1/privacy/recipients/ann%40example.org")
    assert erased.status_code == 200, erased.text
    return str(accepted["storage"]["key"])


def _later(clock) -> str:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime
    from email.utils import format_datetime
    return format_datetime(datetime.fromtimestamp(int(clock.now()) + 3600, UTC), usegmt=True)


def _nothing_shows_ann_after_a_resend(api, services, clock, domain, key) -> None:  # type: ignore[no-untyped-def]
    stored = api.get(f"/v3/domains/{domain}/messages/{key}")
    assert stored.status_code == 200 and "bob@" in stored.text and "ann@" not in stored.text
    resent = api.post(f"/v3/domains/{domain}/messages/{key}", data={"to": "cat@example.org"})
    assert resent.status_code == 200, resent.text
    clock.advance(7200)
    with Sink() as sink:
        deliver_due(services, sink)
    assert {BOB, "cat@example.org"} <= {r.rcpt_tos[0] for r in sink.received}
    assert all(b"ann@" not in r.data for r in sink.received)
    assert "ann@" not in api.get(f"/v3/{domain}/events").text
    logs = api.post("/v1/analytics/logs", json={"events": ["accepted", "delivered"]})
    assert logs.status_code == 200 and "bob@" in logs.text and "ann@" not in logs.text


def test_a_body_kept_for_another_recipient_no_longer_names_the_erased_one(
        api, services, clock, domain) -> None:
    key = _erase_ann_while_bobs_copy_waits(api, clock, domain, api.post(
        f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": f"Ann <{ANN}>, {BOB}", "cc": "dan@example.org",
            "subject": "s", "text": "t", "o:deliverytime": _later(clock)}))
    _nothing_shows_ann_after_a_resend(api, services, clock, domain, key)


def test_a_mime_body_kept_for_another_recipient_no_longer_names_the_erased_one(
        api, services, clock, domain) -> None:
    mime = (f"From: news@{domain}\r\nTo: =?utf-8?q?Ann_M=C3=BCller?= <{ANN}>,\r\n {BOB}\r\n"
            f"Cc: {ANN}\r\nSubject: s\r\n\r\nhello\r\n").encode()
    key = _erase_ann_while_bobs_copy_waits(api, clock, domain, api.post(
        f"/v3/{domain}/messages.mime", data={"to": [ANN, BOB], "o:deliverytime": _later(clock)},
        files={"message": ("message.mime", mime)}))
    _nothing_shows_ann_after_a_resend(api, services, clock, domain, key)
