"""After a send, the database holds neither the recipient's address nor the body in clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from mailhaven.models import metadata
from tests.support import Sink, deliver_due

RECIPIENT = "zelda.quartermaine@example.org"
BODY = "The-secret-body-text-7f3a9c"
SUBJECT = "Quarterly statement for Zelda"


def _send_and_deliver(api, services, domain) -> None:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Billing <billing@{domain}>", "to": f"Zelda Q <{RECIPIENT}>",
        "subject": SUBJECT, "text": BODY, "html": f"<p>{BODY}</p>", "v:customer": RECIPIENT,
    })
    assert reply.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    assert BODY.encode() in sink.received[0].data  # the recipient did get it in clear
    events = api.get(f"/v3/{domain}/events", params={"recipient": RECIPIENT}).json()["items"]
    assert [e["event"] for e in events] == ["delivered", "accepted"]  # and we can read it


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_files_hold_no_plaintext_address_or_body(api, services, domain) -> None:
    _send_and_deliver(api, services, domain)
    services.db.dispose()  # let go of the files; WAL content stays in the -wal file
    database = Path(services.db.engine.url.database)
    files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert database in files
    raw = b"".join(p.read_bytes() for p in files)
    assert len(raw) > 10_000
    for secret in (RECIPIENT, BODY, SUBJECT, "Zelda"):
        assert secret.encode() not in raw, f"{secret!r} found in clear in {files}"
        assert secret.encode("utf-16-le") not in raw
    assert domain.encode() in raw  # the check can see text that is stored in clear


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_rows_hold_no_plaintext_address_or_body(api, services, domain) -> None:
    _send_and_deliver(api, services, domain)
    dump = []
    with services.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                dump.extend(bytes(v) if isinstance(v, memoryview | bytes) else str(v).encode()
                            for v in row)
    raw = b"\n".join(dump)
    for secret in (RECIPIENT, BODY, SUBJECT, "Zelda"):
        assert secret.encode() not in raw, f"{secret!r} found in clear"
    assert domain.encode() in raw
