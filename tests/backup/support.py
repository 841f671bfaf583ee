"""Shared steps of the backup tests: real traffic through the API, and what the API shows."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

from tests.support import Sink, deliver_due, dump_database

from mailhaven.services import Services
from mailhaven.vault import Keyring

ANN, BOB = "ann@example.org", "bob@example.org"
BODY = "Quarterly-statement-7f3a9 for your eyes only"


def keyring(services: Services) -> Keyring:
    return Keyring.from_json(services.settings.resolved_master_key_file.read_text())


def send_and_deliver(api, services: Services, domain: str) -> None:  # type: ignore[no-untyped-def]
    """Mail to ann and bob, delivered; ann unsubscribes; another address bounced; a stored
    template."""
    for to in ([ANN, BOB], BOB):
        sent = api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": to, "subject": "Statement", "text": BODY,
            "o:tag": "statements"})
        assert sent.status_code == 200, sent.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 3
    assert api.post(f"/v3/{domain}/unsubscribes", data={"address": ANN}).status_code == 200
    assert api.post(f"/v3/{domain}/bounces", data={"address": "gone@example.net",
                                                    "code": "550"}).status_code == 200
    assert api.post(f"/v3/{domain}/templates", data={
        "name": "statement", "description": "Statements", "template": f"<p>{BODY}</p>",
        "headers": '{"Subject": "Statement"}'}).status_code == 200


def api_view(api, domain: str) -> dict:  # type: ignore[no-untyped-def]
    """What a customer sees: events, suppressions, domains (links made relative: they name
    the port of the server that answered)."""
    def items(path: str, **params: str | int) -> list:
        text = api.get(path, params=params).text
        return json.loads(text.replace(str(api.base_url).rstrip("/"), ""))["items"]

    return {
        "events": items(f"/v3/{domain}/events", ascending="yes", limit=300),
        **{kind: items(f"/v3/{domain}/{kind}")
           for kind in ("bounces", "unsubscribes", "complaints", "whitelists")},
        "domains": items("/v3/domains"),
        "templates": items(f"/v3/{domain}/templates"),
        "template": api.get(f"/v3/{domain}/templates/statement", params={"active": "yes"}).json(),
    }


def backup_bytes(path: Path) -> bytes:
    """Everything in an archive, decompressed, with every base64 value decoded too."""
    out = [path.read_bytes()]
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for table in manifest["tables"]:
            raw = archive.read(f"tables/{table['name']}.jsonl")
            out.append(raw)
            binary = [table["columns"].index(c) for c in table["binary"]]
            for line in raw.splitlines():
                values = json.loads(line)
                out.extend(base64.b64decode(values[i]) for i in binary if values[i])
    return b"\n".join(out)


def database_bytes(services: Services) -> bytes:
    """The raw SQLite files (database and WAL) and every row, as stored."""
    return dump_database(services).everything()
