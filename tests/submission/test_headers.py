"""X-Mailgun-* headers read as the send API's fields, and taken out of the message."""

from __future__ import annotations

import pytest

from mailhaven.errors import BadRequest
from mailhaven.submission.headers import HEADERS, read_submission

BODY = b"Hello,\r\n\r\nX-Mailgun-Tag: not a header, a line of the body\r\n"


def _message(*fields: str) -> bytes:
    head = ["From: news@mg.acme.test", *fields, "To: ann@example.org", "Subject: Hi"]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + BODY


def test_a_message_without_them_is_kept_byte_for_byte() -> None:
    raw = _message("Reply-To: help@mg.acme.test").replace(b"\r\n", b"\n", 2)
    submitted = read_submission(raw)
    assert submitted.fields == []
    assert submitted.message == raw


@pytest.mark.parametrize(("header", "field"), sorted(HEADERS.items()))
def test_each_header_becomes_its_field(header: str, field: str) -> None:
    submitted = read_submission(_message(f"{header.upper()}: yes"))
    assert submitted.fields == [(field, "yes")]
    assert header.lower().encode() not in submitted.message.lower().split(b"\r\n\r\n")[0]


def test_tags_repeat_and_variables_merge() -> None:
    submitted = read_submission(_message(
        "X-Mailgun-Tag: welcome", 'X-Mailgun-Variables: {"order": "1234", "plan": "pro"}',
        "x-mailgun-tag: onboarding",
        'X-Mailgun-Variables: {"plan": "team", "seats": 5, "meta": {"a": [1]}}'))
    assert submitted.fields == [
        ("o:tag", "welcome"), ("o:tag", "onboarding"), ("v:order", "1234"),
        ("v:plan", "team"), ("v:seats", "5"), ("v:meta", '{"a": [1]}')]


def test_folded_and_encoded_values_are_read_as_written() -> None:
    """A client's email package folds a long JSON value and encodes non-ASCII text
    (RFC 2047), as Django does."""
    submitted = read_submission(_message(
        "X-Mailgun-Recipient-Variables: {\"ann@example.org\": {\"name\": \"Ann\"},",
        " \"bob@example.org\": {\"name\": \"Bob\"}}",
        "X-Mailgun-Tag: =?utf-8?q?caf=C3=A9?="))
    assert submitted.fields == [
        ("recipient-variables",
         '{"ann@example.org": {"name": "Ann"}, "bob@example.org": {"name": "Bob"}}'),
        ("o:tag", "café")]


def test_they_and_bcc_leave_the_message_but_nothing_else_does() -> None:
    raw = _message("X-Mailgun-Track: no", "Bcc: secret@example.org",
                   "X-Mailgun-Sflag: No", "X-Mailgun-Variables: {\"a\": \"b\"}",
                   "X-Mailer: test")
    submitted = read_submission(raw)
    head, _, body = submitted.message.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"From: news@mg.acme.test", b"X-Mailer: test",
                                   b"To: ann@example.org", b"Subject: Hi"]
    assert body == BODY  # the body's lines, and its parts' headers, are the client's


def test_a_header_of_a_part_is_left_alone() -> None:
    raw = (b"From: news@mg.acme.test\r\nContent-Type: message/rfc822\r\n\r\n"
           b"X-Mailgun-Tag: inner\r\nSubject: forwarded\r\n\r\nhi\r\n")
    submitted = read_submission(raw)
    assert submitted.fields == [] and submitted.message == raw


def test_variables_that_are_no_json_object_are_refused() -> None:
    with pytest.raises(BadRequest, match="X-Mailgun-Variables header is not a valid JSON"):
        read_submission(_message("X-Mailgun-Variables: [1, 2]"))


def test_an_api_message_names_the_header_that_gave_the_field() -> None:
    submitted = read_submission(_message("X-Mailgun-Track-Clicks: maybe",
                                         "X-Mailgun-Deliver-By: soon"))
    assert submitted.worded("o:deliverytime is not a valid RFC 2822 date") \
        == "X-Mailgun-Deliver-By is not a valid RFC 2822 date"
    assert submitted.worded("o:tracking-clicks and o:tracking") \
        == "X-Mailgun-Track-Clicks and o:tracking"  # o:tracking came from no header


@pytest.mark.parametrize("end", [b"\r\n", b"\n"])
def test_a_message_with_an_empty_header_has_no_options(end: bytes) -> None:
    """A message that starts with its blank line is all body: a body line shaped like a
    header is text, not an option."""
    raw = end + b"X-Mailgun-Tag: a line of the body\r\nBcc: so is this\r\n\r\nmore\r\n"
    submitted = read_submission(raw)
    assert submitted.fields == []
    assert submitted.message == raw


def test_a_header_of_options_only_leaves_an_empty_header_not_an_extra_line() -> None:
    submitted = read_submission(b"X-Mailgun-Tag: news\r\nX-Mailgun-Dkim: yes\r\n\r\n" + BODY)
    assert submitted.fields == [("o:tag", "news"), ("o:dkim", "yes")]
    assert submitted.message == b"\r\n" + BODY
    assert read_submission(b"X-Mailgun-Tag: news\r\n").message == b""
