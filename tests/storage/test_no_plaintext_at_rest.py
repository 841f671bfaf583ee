"""Personal data is at rest only sealed, and never in a log line (SPEC N1, N2; issue 11).

One recipient's life, on each database: a send (with an address-shaped tag refused) → a
delivery through real MX routing to a sink on loopback → a second send bounced with a 5xx
that names the address → both outcomes posted to a webhook receiver → the recipient's
erasure. Before the erasure, no personal value is in clear in the database (rows, and on
SQLite the raw files with their WAL), in a backup archive, in the installation's other files
or in the server's logs; after it, still nowhere in clear, and what was sealed can no longer
be opened: the API has nothing left to show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from mailhaven.backup.service import create_backup
from mailhaven.sending.request import TAG_HOLDS_ADDRESS
from tests.backup.support import backup_bytes, keyring
from tests.delivery.sinks import DnsServer, with_dns
from tests.support import (
    DatabaseDump,
    Sink,
    SinkBehaviour,
    WebhookReceiver,
    deliver_due,
    send_webhooks,
)

RECIPIENT_DOMAIN = "zq7-recipient.test"
ADDRESS = f"zelda.quartermaine@{RECIPIENT_DOMAIN}"
NAME = "Zëlda Zq7Quartermaine"
SENDER_NAME = "Zq7sender Billing Desk"
SUBJECT = "Zq7subject: your statement, Zëlda"
BODY = "zq7body-text: balance 4411 crowns"
HTML = "zq7body-html: balance 4411 crowns"
VARIABLE = "zq7var-gold-member-4411"
FILENAME = "zq7-invoice-zelda.txt"
ATTACHMENT = "zq7attachment-line-items"
MESSAGE_ID = "order-77.zq7zelda@shop.test"  # a client's own Message-ID names its customer
BOUNCE = f"550 5.1.1 <{ADDRESS}>: zq7reply mailbox unknown"

# Personal values (and distinctive pieces of them), searched in every case and encoding.
PERSONAL = (ADDRESS, RECIPIENT_DOMAIN, "zelda.quartermaine", NAME, "Zq7Quartermaine",
            SENDER_NAME, SUBJECT, BODY, HTML, VARIABLE, FILENAME, ATTACHMENT, MESSAGE_ID,
            "zq7zelda", "zq7reply")
# Not personal data: allowed in clear, and the scan's proof that it sees clear text.
TAG = "zq7tag-campaign"


def _needles(value: str) -> set[bytes]:
    """`value` as stored text may spell it: any case, UTF-8 or a JSON escape."""
    forms = {value, value.lower(), value.upper()}
    return {f.encode() for f in forms} | {json.dumps(f)[1:-1].encode() for f in forms}


def _found(haystacks: dict[str, bytes | list[bytes]], value: str) -> list[str]:
    needles = _needles(value)
    return [where for where, hay in haystacks.items()
            if any(needle in data for data in (hay if isinstance(hay, list) else [hay])
                   for needle in needles)]


class ServerLog(logging.Handler):
    """Every record the server's code logs, at DEBUG, from any thread. Left out: the test's
    own HTTP client's lines (requests to the API under test) and the sink's aiosmtpd chatter
    below WARNING (the sink plays the recipient's server; `mailhaven serve` caps aiosmtpd's
    logger at WARNING for its own listener)."""

    def __init__(self, api_url: str) -> None:
        super().__init__(logging.DEBUG)
        self.api_url = api_url
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("mail.") and record.levelno < logging.WARNING:
            return
        line = self.format(record)
        if record.name == "httpx" and self.api_url in line:
            return
        self.lines.append(line)


@pytest.fixture
def server_log(live) -> Iterator[ServerLog]:  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handler, level = ServerLog(live.base_url), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _backup(services, name: str) -> bytes:  # type: ignore[no-untyped-def]
    """A backup archive as the project's backup service writes it, every member
    decompressed and every sealed value base64-decoded."""
    path = Path(services.settings.data_dir) / f"backup-{name}.zip"
    create_backup(services.db, keyring(services), path)
    return backup_bytes(path)


def _data_files(services) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every other file of the installation: the erasure ledger, the audit anchor…"""
    data_dir = Path(services.settings.data_dir)
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*")
            if p.is_file() and not p.name.startswith(("mailhaven.db", "backup-"))}


def _places(dump: DatabaseDump, backup: bytes, log: ServerLog,
            files: dict[str, bytes]) -> dict[str, bytes | list[bytes]]:
    return {**{f"database column {c}": v for c, v in dump.columns.items()},
            **{f"database file {n}": v for n, v in dump.files.items()},
            **{f"data file {n}": v for n, v in files.items()},
            "backup archive": backup,
            **{f"log line {line[:300]!r}": line.encode() for line in log.lines}}


def _send(api, domain: str, **extra) -> str:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"{SENDER_NAME} <billing@{domain}>", "to": f"{NAME} <{ADDRESS}>",
        "subject": SUBJECT, "text": BODY, "html": f"<p>{HTML}</p>", "o:tag": TAG,
        "v:loyalty": VARIABLE, **extra.pop("data", {})}, **extra)
    assert reply.status_code == 200, reply.text
    return reply.json()["id"]


def _life_of_a_recipient(api, services, domain: str) -> str:  # type: ignore[no-untyped-def]
    """Send → deliver → bounce → webhook; the first message's storage key."""
    refused = api.post(f"/v3/{domain}/messages", data={
        "from": f"billing@{domain}", "to": ADDRESS, "subject": "x", "text": "x",
        "o:tag": f"customer:{ADDRESS}"})
    assert (refused.status_code, refused.json()) == (400, {"message": TAG_HOLDS_ADDRESS})

    answers = iter([None, BOUNCE])  # the first copy is taken, the second bounced
    zone = {RECIPIENT_DOMAIN: {"MX": [f"10 mx.{RECIPIENT_DOMAIN}."]},
            f"mx.{RECIPIENT_DOMAIN}": {"A": ["127.0.0.1"]}}
    with WebhookReceiver() as receiver, DnsServer(zone) as dns, \
            Sink(SinkBehaviour(rcpt=lambda _rcpt: next(answers))) as sink:
        for event in ("delivered", "permanent_fail"):
            assert api.post(f"/v3/domains/{domain}/webhooks",
                            data={"id": event, "url": receiver.url}).status_code == 200
        routed = with_dns(services, dns, sink.port)
        _send(api, domain, data={"h:Message-ID": f"<{MESSAGE_ID}>"},
              files={"attachment": (FILENAME, ATTACHMENT.encode(), "text/plain")})
        deliver_due(routed)
        _send(api, domain)
        deliver_due(routed)
        assert send_webhooks(services) == 2
    [delivered] = sink.received
    assert delivered.rcpt_tos == [ADDRESS] and BODY.encode() in delivered.data
    posted = sorted((h.json["event-data"]["event"], h.json["event-data"]["recipient"])
                    for h in receiver.received)
    assert posted == [("delivered", ADDRESS), ("failed", ADDRESS)]

    events = api.get(f"/v3/{domain}/events", params={"recipient": ADDRESS,
                                                     "ascending": "yes"}).json()["items"]
    assert [e["event"] for e in events] == ["rejected", "accepted", "delivered", "accepted",
                                            "failed"]
    first = events[1]
    assert first["message"]["headers"]["message-id"] == MESSAGE_ID
    assert first["user-variables"] == {"loyalty": VARIABLE} and first["tags"] == [TAG]
    assert api.get(f"/v3/{domain}/bounces/{quote(ADDRESS)}").json()["error"] == BOUNCE
    return first["storage"]["key"]


def test_personal_values_are_only_sealed_and_gone_after_erasure(
        api, services, domain, raw_dump, server_log) -> None:
    storage_key = _life_of_a_recipient(api, services, domain)
    stored = api.get(f"/v3/domains/{domain}/messages/{storage_key}").json()
    assert (stored["Subject"], stored["body-plain"].strip()) == (SUBJECT, BODY)  # it is kept

    findings = []
    before = _places(raw_dump(), _backup(services, "before"), server_log, _data_files(services))
    findings += [f"before erasure: {value!r} in {where}" for value in PERSONAL
                 for where in _found(before, value)]

    erased = api.delete(f"/v1/privacy/recipients/{quote(ADDRESS)}")
    assert erased.status_code == 200, erased.text
    assert api.get(f"/v3/{domain}/events", params={"recipient": ADDRESS}).json()["items"] == []
    assert api.get(f"/v3/domains/{domain}/messages/{storage_key}").status_code == 404
    assert api.get(f"/v3/{domain}/bounces/{quote(ADDRESS)}").status_code == 404

    dump = raw_dump()
    after = _places(dump, _backup(services, "after"), server_log, _data_files(services))
    findings += [f"after erasure: {value!r} in {where}" for value in PERSONAL
                 for where in _found(after, value)]
    assert not findings, "personal data in clear:\n" + "\n".join(findings)

    # The scan sees what is in clear: the tag, in the rows, the files, the backup.
    columns = {w.removeprefix("database column ") for w in _found(before, TAG)}
    assert {"events.tags", "messages.tags", "tags.tag", "stat_counts.tag"} <= columns
    assert "backup archive" in _found(after, TAG)
    assert {"tags.tag", "stat_counts.tag"} <= {
        w.removeprefix("database column ") for w in _found(after, TAG)}
    assert not services.db.is_sqlite or _found(dict(dump.files), TAG)
    # …and the server's logs: every request, every delivery attempt, every webhook post.
    kinds = [json.loads(line.split(" ", 2)[2]).get("kind") for line in server_log.lines
             if line.startswith("mailhaven.") and line.split(" ", 2)[2].startswith("{")]
    assert {"request", "delivery", "webhook"} <= set(kinds)
