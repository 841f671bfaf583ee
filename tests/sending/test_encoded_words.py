"""Encoded words a client wrote (RFC 2047): only real text charsets are decoded, and only in
the fields whose text RFC 2047 may encode (found in review of issue 10, finding 1)."""

from __future__ import annotations

import pytest

from mailhaven.messages import folding
from tests.sending.test_send_api import by_rcpt, delivered, events, minimal, queued, send

# Codec names Python knows that are not text encodings (bytes-to-bytes, str-to-str) or that
# refuse the "replace" error handler: each used to raise out of the decoding.
NOT_TEXT_CHARSETS = ["rot13", "base64", "hex", "zlib", "uu", "bz2", "quopri", "idna",
                     "undefined"]


@pytest.mark.parametrize("charset", NOT_TEXT_CHARSETS)
def test_a_word_in_a_charset_that_is_no_text_encoding_stays_as_written(charset: str) -> None:
    for kind, payload in (("q", "abc"), ("b", "YWJj")):
        word = f"=?{charset}?{kind}?{payload}?="
        assert folding.decode_words(f"Hi {word} there") == f"Hi {word} there"
    assert folding.decode_words("=?iso-8859-1?q?M=FCller?=") == "Müller"


def mime(head: bytes) -> list:
    return [("message", ("m.eml", b"From: a@mg.acme.test\r\n" + head + b"\r\n\r\nbody\r\n",
                         "message/rfc822"))]


def test_the_attack_an_encoded_word_in_rot13_is_sent_as_written(api, services, domain) -> None:
    """Before: the .mime send answered 500; the form send answered 200, then every copy
    failed 554 and the stored message's GET answered 500."""
    word = "=?rot13?q?abc?="
    queued(send(api, domain, [("to", "ann@example.org")], path="messages.mime",
                files=mime(b"Subject: " + word.encode() + b"\r\nX-Foo: =?base64?q?abc?=")))
    queued(send(api, domain, minimal(to="bob@example.org", subject="=?idna?q?x?= hi",
                                     **{"h:X-Foo": word, "h:X-Bar": "=?undefined?b?YWJj?="})))
    copies = by_rcpt(delivered(services))
    assert b"\r\nSubject: " + word.encode() + b"\r\n" in copies["ann@example.org"].data
    got = copies["bob@example.org"].message
    assert (got["X-Foo"], got["X-Bar"], got["Subject"]) == (
        word, "=?undefined?b?YWJj?=", "=?idna?q?x?= hi")
    assert events(api, domain, event="failed") == []
    items = events(api, domain, event="delivered")
    assert len(items) == 2
    assert {e["message"]["headers"]["subject"] for e in items} == {word, "=?idna?q?x?= hi"}
    for event in items:
        stored = api.get(event["storage"]["url"])
        assert stored.status_code == 200, stored.text


# -- structured fields go as written ------------------------------------------------------
UNSUBSCRIBE = "<https://x.test/u?e=?b&t=%3D%3F>, <mailto:u@x.test?subject=unsub=?x>"
LONG_URL = "<https://x.test/u?t=" + "a" * 900 + ">"  # past the 900 that text encodes
STRUCTURED = {
    "List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "List-Archive": LONG_URL, "List-Id": "Acme =?news?= <news.x.test>",
    "References": "<a=?b@x.test> <=?utf-8?q?c?=@x.test> " + " ".join(
        f"<id{n}.{'r' * 60}@x.test>" for n in range(40)),
    "In-Reply-To": "<a=?b@x.test>",
}


def test_the_attack_a_structured_field_is_sent_as_written_not_encoded(
        api, services, domain) -> None:
    """Before: `=?` or a word over 900 bytes anywhere made it encoded words, and one-click
    unsubscribe (RFC 8058), threading and list headers broke."""
    fields = {f"h:{name}": value for name, value in STRUCTURED.items()}
    queued(send(api, domain, minimal(**fields, **{
        "h:X-Note": "see https://x.test/u?e=?b", "subject": "x=?utf-8?q?a?= and =?b"})))
    queued(send(api, domain, [("to", "bob@example.org"), *fields.items()],
                path="messages.mime", files=mime(b"Subject: s")))
    copies = by_rcpt(delivered(services))
    for got in copies.values():
        head = got.data.partition(b"\r\n\r\n")[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= folding.MAX_LINE
        unfolded = head.replace(b"\r\n ", b" ")
        for name, value in STRUCTURED.items():
            assert f"\r\n{name}: {value}\r\n".encode() in unfolded, name
    ann = copies["ann@example.org"]
    assert b"\r\nX-Note: see https://x.test/u?e=?b\r\n" in ann.data  # no encoded word in it
    assert ann.message["Subject"] == "x=?utf-8?q?a?= and =?b"  # that one is: it would decode
    assert len(events(api, domain, event="delivered")) == 2


def test_a_structured_field_too_long_to_fold_is_refused(api, domain) -> None:
    from mailhaven.sending.request import UNFOLDABLE

    url = "<https://x.test/u?t=" + "a" * 980 + ">"
    for fields in (minimal(**{"h:List-Unsubscribe": url}),
                   minimal(**{"h:References": "<a@x.test>" + " " * 500 + "b" * 600})):
        reply = send(api, domain, fields)
        assert reply.status_code == 400, reply.text
        name = next(k for k, _ in fields if k.startswith("h:"))
        assert reply.json() == {"message": UNFOLDABLE.format(name)}
    queued(send(api, domain, minimal(**{"h:X-Long-Url": url})))  # text: encoded, as before


@pytest.mark.parametrize("utf8", [False, True])
def test_structured_fields_fold_in_their_blanks_only(utf8: bool) -> None:
    for name, value in STRUCTURED.items():
        field = folding.structured_field(name, value, utf8=utf8)
        assert field.replace(b"\r\n ", b" ") == f"{name}: {value}".encode()
        assert all(len(line) <= folding.MAX_LINE for line in field.split(b"\r\n"))
    assert folding.structured_field("List-Id", "Zoë <z.x.test>") == (
        b"List-Id: =?utf-8?q?Zo=C3=AB?= <z.x.test>")  # 7-bit: no other way
    assert folding.structured_field("List-Id", "Zoë <z.x.test>", utf8=True) == (
        "List-Id: Zoë <z.x.test>".encode())
