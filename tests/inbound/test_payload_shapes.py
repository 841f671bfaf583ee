"""Mailgun's inbound POST made from received messages: the fields a route's forward()
target reads, for plain, HTML, attachments, inline images, other charsets and raw MIME."""

from __future__ import annotations

import json
from email.message import EmailMessage
from urllib.parse import parse_qs

from mailhaven.inbound import payload

PLAIN = (b"From: Ann Buyer <ann@shop.example.org>\r\nTo: support@mg.acme.test\r\n"
         b"Subject: Re: Order 77\r\nMessage-ID: <r1@shop.example.org>\r\n"
         b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nX-Mailgun-Sflag: No\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Thanks, it arrived.\r\n\r\n--\r\nAnn Buyer\r\nShop\r\n\r\n"
         b"On Fri, Dec 4, 2026 at 9:00 AM Support <support@mg.acme.test> wrote:\r\n"
         b"> Your parcel left today.\r\n")


def fields(made: payload.Payload) -> dict[str, str]:
    return dict(made.fields)


def test_a_plain_reply_has_its_text_stripped_of_quote_and_signature() -> None:
    made = payload.forwarded(PLAIN, recipient="support@mg.acme.test",
                             sender="bounce@shop.example.org")
    got = fields(made)
    assert got["recipient"] == "support@mg.acme.test"
    assert got["sender"] == "bounce@shop.example.org"
    assert got["from"] == "Ann Buyer <ann@shop.example.org>"
    assert got["subject"] == "Re: Order 77"
    assert "Your parcel left today." in got["body-plain"]
    assert got["stripped-text"] == "Thanks, it arrived."
    assert "Ann Buyer" in got["stripped-signature"]
    assert got["attachment-count"] == "0" and json.loads(got["content-id-map"]) == {}
    assert made.files == []
    # no HTML part: no body-html or stripped-html (anymail's message.html is then None)
    assert "body-html" not in got and "stripped-html" not in got
    stored = {"recipient": "s", "sender": "", "domain": "mg.acme.test", "message_url": "u"}
    assert "body-html" not in fields(payload.notified(PLAIN, **stored))
    assert "stripped-html" not in payload.stored_fields(PLAIN, **stored)
    # every header as a field of its own, named as Mailgun names them, and all in order
    assert got["Message-Id"] == "<r1@shop.example.org>" and got["X-Mailgun-Sflag"] == "No"
    headers = json.loads(got["message-headers"])
    assert [h[0] for h in headers] == ["From", "To", "Subject", "Message-Id", "Date",
                                       "X-Mailgun-Sflag", "Mime-Version", "Content-Type"]
    content_type, body = payload.encode(made)
    assert content_type == "application/x-www-form-urlencoded"
    assert parse_qs(body.decode())["stripped-text"] == ["Thanks, it arrived."]


def test_an_html_only_message_gets_a_text_version_and_stripped_html() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@shop.example.org", "s@mg.acme.test", "Hi"
    msg.set_content("<html><body><p>New answer</p><div class=\"gmail_quote\">On Fri "
                    "Support wrote:<blockquote>old text</blockquote></div></body></html>",
                    subtype="html")
    got = fields(payload.forwarded(msg.as_bytes(), recipient="s@mg.acme.test", sender=""))
    assert "New answer" in got["body-plain"]  # always present, as Mailgun makes it
    assert "old text" in got["body-html"]
    assert "New answer" in got["stripped-html"] and "old text" not in got["stripped-html"]


def test_attachments_and_inline_images_are_files_with_a_content_id_map() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@shop.example.org", "s@mg.acme.test", "Pic"
    msg.set_content("see the picture")
    msg.add_alternative('<p><img src="cid:logo@shop"></p>', subtype="html")
    msg.get_payload()[1].add_related(b"\x89PNG-bytes", "image", "png", cid="<logo@shop>",
                                     filename="logo.png")
    msg.add_attachment(b"%PDF-1.4 invoice", "application", "pdf", filename="invoice.pdf")
    made = payload.forwarded(msg.as_bytes(), recipient="s@mg.acme.test", sender="")
    got = fields(made)
    assert got["attachment-count"] == "2"
    assert json.loads(got["content-id-map"]) == {"<logo@shop>": "attachment-1"}
    assert [(f.field, f.filename, f.content_type, f.data) for f in made.files] == [
        ("attachment-1", "logo.png", "image/png", b"\x89PNG-bytes"),
        ("attachment-2", "invoice.pdf", "application/pdf", b"%PDF-1.4 invoice")]
    content_type, body = payload.encode(made)
    assert content_type.startswith("multipart/form-data; boundary=")
    assert b'name="attachment-2"; filename="invoice.pdf"' in body


def test_other_charsets_arrive_as_utf8() -> None:
    raw = (b"From: =?koi8-r?b?9MXT1A==?= <t@example.ru>\r\nTo: s@mg.acme.test\r\n"
           b"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain; charset=windows-1252\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n") + "Grüße – €5\r\n".encode(
        "windows-1252") + (b"--b\r\nContent-Type: text/html; charset=x-unknown-charset\r\n\r\n"
                           b"<p>caf\xc3\xa9</p>\r\n--b--\r\n")
    got = fields(payload.forwarded(raw, recipient="s@mg.acme.test", sender=""))
    assert got["subject"] == "Résumé"
    assert got["from"] == "Тест <t@example.ru>"
    assert got["body-plain"].strip() == "Grüße – €5"
    assert "café" in got["body-html"]  # an unknown charset is read as UTF-8
    assert payload.encode(payload.forwarded(raw, recipient="s", sender=""))[1]


def test_a_url_whose_path_holds_mime_gets_the_message_as_received() -> None:
    assert payload.wants_mime("https://app.example.com/inbound/mime")
    # django-anymail's documented URL for Mailgun's raw MIME ends in a slash
    assert payload.wants_mime("https://u:p@app.example.com/anymail/mailgun/inbound_mime/")
    assert payload.wants_mime("https://app.example.com/mimetypes/in")  # "contains", as Mailgun
    assert not payload.wants_mime("https://app.example.com/anymail/mailgun/inbound/")
    assert not payload.wants_mime("https://app.example.com/inbound?format=mime")
    assert not payload.wants_mime("https://mime.example.com/inbound")
    made = payload.mime_forwarded(PLAIN, recipient="support@mg.acme.test", sender="b@x.org")
    got = fields(made)
    assert got["body-mime"] == PLAIN  # its bytes, as they are
    assert got["subject"] == "Re: Order 77" and got["from"].startswith("Ann Buyer")
    assert "body-plain" not in got and made.files == []


def test_the_signature_is_mailguns_hmac_of_timestamp_and_token() -> None:
    import hashlib
    import hmac
    made = payload.signed(payload.mime_forwarded(PLAIN, recipient="s", sender=""),
                          "key-secret", 1_800_000_000.0)
    got = fields(made)
    assert got["timestamp"] == "1800000000" and len(got["token"]) == 50
    assert got["signature"] == hmac.new(b"key-secret", (got["timestamp"] + got["token"])
                                        .encode(), hashlib.sha256).hexdigest()
