"""store(notify=…): the `stored` event, the notify POST with Mailgun's `message-url` and
`attachments`, and the message read back at its message-url (JSON, raw MIME, attachments);
nobody else's key reads it."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from mailhaven.routes.expressions import RouteAction
from tests.inbound.test_actions_support import (
    a_message,
    run_actions,
    send_route_posts,
    store_inbound,
)
from tests.support import WebhookReceiver

RECIPIENT = "orders@mg.acme.test"
ROUTE = "aaaaaaaaaaaaaaaaaaaaaaaa"


def test_store_with_notify_is_fetched_back_by_its_message_url(
        services, account, domain, api, second_api) -> None:
    raw = a_message(attachment=b"%PDF-1.4 stored invoice",
                    html="<p>Where is my parcel?</p>")
    key = store_inbound(services, account[0], domain, raw, to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT,
                    [RouteAction(ROUTE, "store", None, notify=receiver.url)])
        assert send_route_posts(services) == 1
    hook, = receiver.received
    assert hook.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(hook.body.decode(), keep_blank_values=True).items()}
    assert form["recipient"] == RECIPIENT and form["domain"] == domain
    assert form["subject"] == "Order 77" and "attachment-count" not in form
    assert {"timestamp", "token", "signature"} <= form.keys()
    message_url = form["message-url"]
    assert message_url.endswith(f"/v3/domains/{domain}/messages/{key}")
    listed, = json.loads(form["attachments"])
    assert listed["name"] == "invoice.pdf" and listed["content-type"] == "application/pdf"
    assert listed["size"] == len(b"%PDF-1.4 stored invoice")

    events = api.get(f"/v3/{domain}/events", params={"event": "stored"}).json()["items"]
    stored, = events
    assert stored["recipient"] == RECIPIENT and stored["storage"]["key"] == key
    assert urlsplit(stored["storage"]["url"]).path == urlsplit(message_url).path
    assert stored["message"]["headers"]["subject"] == "Order 77"

    path = urlsplit(message_url).path
    view = api.get(path)
    assert view.status_code == 200, view.text
    got = view.json()
    assert got["recipients"] == RECIPIENT and got["from"] == "Ann Buyer <ann@shop.example.org>"
    assert got["body-plain"] == "Where is my parcel?\n"
    assert got["stripped-text"] == "Where is my parcel?"
    assert "<p>Where is my parcel?</p>" in got["body-html"]
    assert ["Message-Id", "<order-77@shop.example.org>"] in got["message-headers"]
    assert got["attachments"] == [listed]
    attachment = api.get(urlsplit(listed["url"]).path)
    assert attachment.status_code == 200
    assert attachment.content == b"%PDF-1.4 stored invoice"
    assert attachment.headers["content-type"] == "application/pdf"
    assert api.get(path + "/attachments/1").status_code == 404

    mime = api.get(path, headers={"Accept": "message/rfc2822"}).json()
    parsed = message_from_bytes(mime["body-mime"].encode(), policy=policy.default)
    assert parsed["Message-ID"] == "<order-77@shop.example.org>"
    assert parsed["Authentication-Results"]  # as received, our trace fields on top

    other = second_api.get(f"/v3/domains/{domain}/messages/{key}")
    assert other.status_code == 404 and other.json() == {"message": "Domain not found"}


def test_a_bad_action_is_skipped_and_the_others_still_run(
        services, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    run_actions(services, key, RECIPIENT, [
        RouteAction(ROUTE, "forward", "not an address, nor a URL"),
        RouteAction(ROUTE, "forward", "ftp://files.example.com/in"),
        RouteAction(ROUTE, "store", None)])
    events = api.get(f"/v3/{domain}/events", params={"event": "stored"}).json()["items"]
    assert len(events) == 1
    assert api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"] == []


def deeply_nested(levels: int) -> bytes:
    head = (b"From: Ann Buyer <ann@shop.example.org>\r\nSubject: Deep\r\n"
            b"Message-ID: <deep@shop.example.org>\r\nMIME-Version: 1.0\r\n")
    opening = b"".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n'
                       .encode() for n in range(levels))
    closing = b"".join(f"--b{n}--\r\n".encode() for n in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closing


def test_a_message_nested_3000_deep_is_viewed_by_its_header_not_a_500(
        services, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, deeply_nested(3000), to=[RECIPIENT])
    path = f"/v3/domains/{domain}/messages/{key}"
    view = api.get(path)
    assert view.status_code == 200, view.text
    got = view.json()
    assert got["subject"] == "Deep" and got["from"] == "Ann Buyer <ann@shop.example.org>"
    assert got["recipients"] == RECIPIENT and got["attachments"] == []
    assert "body-plain" not in got  # its parts can't be read; its MIME still can
    assert ["Message-Id", "<deep@shop.example.org>"] in got["message-headers"]
    mime = api.get(path, headers={"Accept": "message/rfc2822"})
    assert mime.status_code == 200 and mime.json()["body-mime"].endswith("--b0--\r\n")
    assert api.get(path + "/attachments/0").status_code == 404


def test_content_id_map_is_objects_in_the_stored_json_and_urls_in_the_notify_post(
        services, account, domain, api) -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "Ann Buyer <ann@shop.example.org>", "Logo"
    msg.set_content("See the logo.\n")
    msg.add_alternative('<p><img src="cid:logo@shop"></p>', subtype="html")
    msg.get_payload()[1].add_related(b"\x89PNG-bytes", "image", "png", cid="<logo@shop>",
                                     filename="logo.png")
    key = store_inbound(services, account[0], domain, msg.as_bytes(), to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT,
                    [RouteAction(ROUTE, "store", None, notify=receiver.url)])
        assert send_route_posts(services) == 1
    hook, = receiver.received
    form = {k: v[0] for k, v in parse_qs(hook.body.decode(), keep_blank_values=True).items()}
    url = form["message-url"] + "/attachments/0"
    assert json.loads(form["content-id-map"]) == {"<logo@shop>": url}
    got = api.get(urlsplit(form["message-url"]).path).json()
    logo = {"url": url, "content-type": "image/png", "name": "logo.png",
            "size": len(b"\x89PNG-bytes")}
    assert got["content-id-map"] == {"<logo@shop>": logo}
    assert got["attachments"] == [logo]
