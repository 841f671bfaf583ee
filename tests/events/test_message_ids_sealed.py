"""A Message-ID the client wrote is personal data (`order-77.zelda@shop.test`): stored only
sealed, found by its blind index, and gone with the recipient's erasure (issue 11) — while
the send response, the Events API, webhooks and the mail itself carry it as before."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage

from sqlalchemy import select

from mailhaven.delivery import queue
from mailhaven.delivery.models import Delivery
from mailhaven.exports import export_account
from mailhaven.retention import service as retention
from tests.exports.archive import read
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks
from tests.vault.raw import holds

FORM_ID = "order-77.zelda@shop.test"
MIME_ID = "Invoice-12.Yusuf@shop.test"
DAY = 86_400.0


def _send_both(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    """One form send with `h:Message-ID`, one .mime send with its own Message-ID header."""
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"shop@{domain}", "to": "zelda@example.com", "subject": "Your order",
        "text": "Shipped.", "h:Message-ID": f"<{FORM_ID}>"})
    assert reply.json() == {"id": f"<{FORM_ID}>", "message": "Queued. Thank you."}
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"] = f"shop@{domain}", "yusuf@example.com", "Invoice"
    mime["Message-ID"] = f"<{MIME_ID}>"
    mime.set_content("Attached.")
    reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "yusuf@example.com"},
                     files={"message": ("message.mime", mime.as_bytes(), "message/rfc822")})
    assert reply.json() == {"id": f"<{MIME_ID}>", "message": "Queued. Thank you."}


def _by_message_id(api, domain: str, message_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{domain}/events", params={"message-id": message_id,
                                                   "ascending": "yes"}).json()["items"]


def test_client_message_ids_are_sealed_and_still_found(api, services, domain) -> None:
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered",
                                                          "url": receiver.url})
        _send_both(api, domain)
        deliver_due(services, sink)
        send_webhooks(services)

    for value in (FORM_ID, MIME_ID, "order-77", "invoice-12"):
        assert not holds(services, value), f"{value!r} is stored in clear"
    assert holds(services, domain)  # the check sees what is stored in clear

    assert {m.message["Message-ID"] for m in sink.received} == {f"<{FORM_ID}>",
                                                               f"<{MIME_ID}>"}
    for asked, expected in ((f"<{FORM_ID}>", FORM_ID), (MIME_ID, MIME_ID)):
        found = _by_message_id(api, domain, asked)
        assert [e["event"] for e in found] == ["accepted", "delivered"]
        assert {e["message"]["headers"]["message-id"] for e in found} == {expected}
    # The page links carry the filter as its blind index, never the id.
    paging = api.get(f"/v3/{domain}/events", params={"message-id": FORM_ID}).json()["paging"]
    assert all("order-77" not in url for url in paging.values())
    assert len(api.get(paging["first"]).json()["items"]) == 2
    assert _by_message_id(api, domain, "order-78.zelda@shop.test") == []

    hooks = {h.json["event-data"]["recipient"]: h.json["event-data"] for h in receiver.received}
    assert hooks["zelda@example.com"]["message"]["headers"]["message-id"] == FORM_ID
    assert hooks["yusuf@example.com"]["message"]["headers"]["message-id"] == MIME_ID


def test_a_copys_later_events_keep_the_message_id_after_its_body_is_purged(
        api, services, domain, clock) -> None:
    with Sink() as sink:
        _send_both(api, domain)
        deliver_due(services, sink)
    clock.advance(4 * DAY)  # bodies are kept 3 days after their final state
    retention.run(services.db, services.clock)
    with services.db.sessions() as session:
        ids = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
        jobs = [queue.describe(session, services.vault, i) for i in ids]
    assert [job.document for job in jobs if job] == [None, None]  # the bodies are gone
    assert [job.facts.message_id for job in jobs if job] == [FORM_ID, MIME_ID]
    assert [job.facts.headers["message-id"] for job in jobs if job] == [FORM_ID, MIME_ID]


def test_an_erasure_leaves_no_way_to_the_message_id(api, services, account, domain,
                                                    tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        _send_both(api, domain)
        deliver_due(services, sink)
    assert api.delete("/v1/privacy/recipients/zelda%40example.com").status_code == 200

    assert _by_message_id(api, domain, FORM_ID) == []
    assert [e["event"] for e in _by_message_id(api, domain, MIME_ID)] == ["accepted",
                                                                          "delivered"]
    with services.db.sessions() as session:  # zelda's copy, and its sealed id, are gone
        [left] = session.scalars(select(Delivery)).all()
        assert queue.describe(session, services.vault, left.id).facts.message_id == MIME_ID
    export = read(export_account(services.db, services.vault, account[0],
                                 tmp_path / "export.zip", hostname="mx.test",
                                 clock=services.clock).path)
    assert sorted(m["message_id"] or "" for m in export.document["categories"]["messages"]) == [
        "", MIME_ID]  # the holder's export: what the copies left still open
    for value in (FORM_ID, "order-77"):
        assert not holds(services, value)


def test_a_page_link_made_before_the_ids_were_sealed_still_finds_them(
        api, services, domain) -> None:
    """A client polling a `next` link issued before migration 0017 (the filter in it is the
    Message-ID itself, not its index) keeps getting its events, not empty pages."""
    _send_both(api, domain)
    first = api.get(f"/v3/{domain}/events", params={"message-id": FORM_ID, "limit": 1,
                                                    "ascending": "yes"}).json()
    token = first["paging"]["first"].rsplit("/", 1)[1]
    body, _, _ = token.partition(".")
    query = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    query["filters"]["message-id"] = FORM_ID  # as the old links carried it
    old = base64.urlsafe_b64encode(json.dumps(query, separators=(",", ":")).encode())
    old_body = old.decode().rstrip("=")
    old_token = f"{old_body}.{services.vault.token_mac(old_body, 20)}"
    page = api.get(f"/v3/{domain}/events/{old_token}")
    assert page.status_code == 200, page.text
    assert [e["event"] for e in page.json()["items"]] == ["accepted"]
