"""Encoded words a client wrote (RFC 2047): only real text charsets are decoded, and only in
the fields whose text RFC 2047 may encode (found in review of issue 10, finding 1)."""

from __future__ import annotations

import pytest

from mailhaven.sending import folding
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
