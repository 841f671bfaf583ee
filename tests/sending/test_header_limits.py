"""Header limits at intake (issue 10, finding 1) and characters that used to make every copy
unrenderable (finding 11): refused with Mailgun's 400, or folded as line breaks always were."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from mailhaven.addresses import MAX_DISPLAY_NAME_CHARS, NAME_TOO_LONG
from mailhaven.sending.request import (
    HEADER_NAME_TOO_LONG,
    HEADER_TOO_LONG,
    HEADERS_TOO_LARGE,
    MAX_CUSTOM_HEADERS,
    MAX_HEADER_CHARS,
    MAX_HEADER_NAME_CHARS,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_SUBJECT_CHARS,
    MIME_LINE_TOO_LONG,
    MIME_TOO_DEEP,
    NOT_TEXT,
    PART_HEADERS_TOO_LARGE,
    SUBJECT_TOO_LONG,
    TOO_MANY_HEADERS,
    TOO_MANY_PARTS,
)
from tests.sending.test_send_api import (
    by_rcpt,
    delivered,
    events,
    minimal,
    not_rejected,
    queued,
    send,
)

RV = "recipient-variables"


def refused(reply: httpx.Response, message: str) -> None:
    assert reply.status_code == 400, reply.text
    assert reply.json() == {"message": message}


def mime(head: bytes) -> list:
    return [("message", ("m.eml", b"From: a@mg.acme.test\r\n" + head + b"\r\n\r\nbody\r\n",
                         "message/rfc822"))]


def test_the_attack_a_quarter_million_word_subject_is_refused_at_once(api, domain) -> None:
    """The probe's send: 'word ' * 2**18 to 8 recipients stalled every account's sending."""
    to = ", ".join(f"r{n}@example.org" for n in range(8))
    started = time.monotonic()
    reply = send(api, domain, minimal(to=to, subject="word " * 2**18))
    assert time.monotonic() - started < 10  # answered, not rendered
    refused(reply, SUBJECT_TOO_LONG)
    assert not_rejected(api, domain) == []
    (rejected,) = events(api, domain, event="rejected")
    assert len(rejected["message"]["headers"]["subject"]) == MAX_SUBJECT_CHARS  # not 1.3 MB


LONG = "x" * (MAX_HEADER_CHARS + 1)
REFUSED: dict[str, tuple[list[tuple[str, str]], str]] = {
    "subject": (minimal(subject="é" * (MAX_SUBJECT_CHARS + 1)), SUBJECT_TOO_LONG),
    "h-subject": (minimal(**{"h:Subject": "s" * (MAX_SUBJECT_CHARS + 1)}), SUBJECT_TOO_LONG),
    "subject-filled-in": (minimal(subject="Hi %recipient.name%", **{
        RV: json.dumps({"ann@example.org": {"name": "n" * MAX_SUBJECT_CHARS}})}),
        SUBJECT_TOO_LONG),
    "header-filled-in": (minimal(**{"h:X-Long": "%recipient.v%%recipient.v%", RV: json.dumps(
        {"ann@example.org": {"v": LONG[:MAX_HEADER_CHARS // 2 + 1]}})}),
        HEADER_TOO_LONG.format("h:X-Long")),
    "variables-filled-in": (minimal(**{f"v:k{n}": "%recipient.v%" for n in range(8)}, **{
        RV: json.dumps({"ann@example.org": {"v": "v" * 13_000}})}), HEADERS_TOO_LARGE),
    "too-many-headers": ([*minimal(), *[(f"h:X-{n}", "x") for n in range(MAX_CUSTOM_HEADERS + 1)]],
                         TOO_MANY_HEADERS),
    "header-name": (minimal(**{"h:X-" + "n" * MAX_HEADER_NAME_CHARS: "x"}), HEADER_NAME_TOO_LONG),
    "display-name-to": (minimal(to=f"{'N' * (MAX_DISPLAY_NAME_CHARS + 1)} <ann@example.org>"),
                        NAME_TOO_LONG.format("to")),
    "display-name-cc": (minimal(cc=f'"{"N" * 400_000}" <carl@example.org>'),
                        NAME_TOO_LONG.format("cc")),
    "display-name-from": (minimal(**{"from": f"{'N' * 300} <a@mg.acme.test>"}),
                          NAME_TOO_LONG.format("from")),
    "to-too-large": (minimal(to=", ".join(f"{'N' * 250} <r{n}@example.org>" for n in range(420))),
                     HEADERS_TOO_LARGE),
    "lone-surrogate": (minimal(subject="%recipient.x%", **{RV: '{"ann@example.org": {"x": '
                                                                '"\\ud800"}}'}), NOT_TEXT),
}


@pytest.mark.parametrize("case", REFUSED)
def test_headers_past_the_limits_are_refused_before_anything_is_queued(api, domain,
                                                                       case: str) -> None:
    fields, message = REFUSED[case]
    refused(send(api, domain, fields), message)
    assert not_rejected(api, domain) == []


MIME_REFUSED: dict[str, tuple[bytes, str]] = {
    "long-line": (b"X-Long: " + b"x" * 991, MIME_LINE_TOO_LONG),
    "huge-header": (b"X-Many: x\r\n" * 10_000, HEADERS_TOO_LARGE),
    "long-field": (b"X-Long: " + b"\r\n x" * (MAX_HEADER_CHARS // 2 + 1), HEADER_TOO_LONG.format(
        "X-Long")),
    "long-subject": (b"Subject: " + b"=?utf-8?b?w6nDqcOpw6nDqcOp?=\r\n " * 200, SUBJECT_TOO_LONG),
}


@pytest.mark.parametrize("case", MIME_REFUSED)
def test_a_mime_message_past_the_limits_is_refused(api, domain, case: str) -> None:
    head, message = MIME_REFUSED[case]
    refused(send(api, domain, [("to", "ann@example.org")], files=mime(head),
                 path="messages.mime"), message)
    assert not_rejected(api, domain) == []


def test_what_fits_the_limits_is_sent(api, services, domain) -> None:
    subject = "é" * MAX_SUBJECT_CHARS
    queued(send(api, domain, minimal(to="Ann <ann@example.org>", subject=subject, **{
        "h:X-Big": "y" * (MAX_HEADER_CHARS - 100),
        "cc": f"{'N' * MAX_DISPLAY_NAME_CHARS} <carl@example.org>"})))
    queued(send(api, domain, [("to", "bob@example.org")], path="messages.mime",
                files=mime(b"Subject: Fine\r\nX-Folded: " + b"\r\n x" * 3000)))
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == ["ann@example.org", "bob@example.org", "carl@example.org"]
    got = copies["ann@example.org"]
    assert got.message["Subject"] == subject
    assert max(len(line) for line in got.data.split(b"\r\n")) <= 998


# -- finding 11: line separators and controls in header values --------------------------
SEPARATORS = {"u2028": "\u2028", "u2029": "\u2029", "u0085": "\x85", "cr": "\r", "lf": "\n",
              "crlf": "\r\n"}
CONTROLS = {"nul": "\x00", "esc": "\x1b", "vt": "\x0b", "del": "\x7f"}


def test_line_separators_in_header_values_fold_to_a_space_and_every_copy_goes(
        api, services, domain) -> None:
    """Before: each went through validation and then every copy failed `554 Message could
    not be rendered or signed` (and the stored message answered 500)."""
    for case, char in {**SEPARATORS, **CONTROLS}.items():
        queued(send(api, domain, [
            ("from", f"Acme{char}News <news@mg.acme.test>"),
            ("to", f"Ann{char}Lee <{case}@example.org>"), ("to", f"{case}.b@example.org"),
            ("subject", f"Hi{char}there %recipient.x%"), ("h:X-Custom", f"a{char}b"),
            ("text", f"Body{char}kept %recipient.x%"),
            (RV, json.dumps({f"{case}@example.org": {"x": f"v{char}w"},
                             f"{case}.b@example.org": {"x": "plain"}}))]))
    copies = by_rcpt(delivered(services))
    assert len(copies) == 2 * len(SEPARATORS) + 2 * len(CONTROLS)
    for case, char in {**SEPARATORS, **CONTROLS}.items():
        got = copies[f"{case}@example.org"].message
        gap = " " if case in SEPARATORS else ""  # a line break is a space; a control goes
        assert got["Subject"] == f"Hi{gap}there v{gap}w"
        assert got["X-Custom"] == f"a{gap}b"
        assert got["To"].addresses[0].display_name == f"Ann{gap}Lee"
        assert got["From"].addresses[0].display_name == f"Acme{gap}News"
        if case in ("u2028", "u2029", "u0085"):  # the body is no header: it keeps them
            assert got.get_content().rstrip("\r\n") == f"Body{char}kept v{char}w"
    assert events(api, domain, event="failed") == []
    for event in events(api, domain, event="delivered")[:4]:
        stored = api.get(event["storage"]["url"])
        assert stored.status_code == 200, stored.text


# -- a MIME message's parts: the same limits on each part's header ----------------------
def multipart(*parts: bytes, boundary: bytes = b"XX") -> list:
    raw = (b"From: a@mg.acme.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\npreamble\r\n"
           + b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
           + b"--" + boundary + b"--\r\n")
    return [("message", ("m.eml", raw, "message/rfc822"))]


TEXT_PART = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello"
PDF_PART = (b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\nJVBERi0xLjQK")


def attachment(filename: bytes) -> bytes:
    return (b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
            b"filename=\"" + filename + b"\"\r\n\r\nAAAA")


PARTS_REFUSED: dict[str, tuple[list, str]] = {
    "the-attack": (multipart(TEXT_PART, attachment(b"a " * 200_000)), MIME_LINE_TOO_LONG),
    "folded-filename": (multipart(TEXT_PART, attachment(b"a\r\n " * 9000)),
                        HEADER_TOO_LONG.format("Content-Disposition")),
    "part-header-block": (multipart(b"X-Many: x\r\n" * 10_000 + TEXT_PART), HEADERS_TOO_LARGE),
    "nested-multipart": (multipart(
        b"Content-Type: multipart/alternative; boundary=YY\r\n\r\n--YY\r\n"
        + attachment(b"a\r\n " * 9000) + b"\r\n--YY--"),
        HEADER_TOO_LONG.format("Content-Disposition")),
    "attached-message": (multipart(
        b"Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\nSubject: "
        + b"s\r\n " * 9000 + b"\r\n\r\nbody"), HEADER_TOO_LONG.format("Subject")),
    "nested-messages": (multipart(b"Content-Type: message/rfc822\r\n\r\n" * 3000 + b"\r\nhi"),
                        MIME_TOO_DEEP),  # a 500 RecursionError before
    "nested-multiparts": (multipart(b"".join(
        b"Content-Type: multipart/mixed; boundary=B%d\r\n\r\n--B%d\r\n" % (n, n)
        for n in range(MAX_MIME_DEPTH)) + TEXT_PART), MIME_TOO_DEEP),
    "parts": (multipart(*[b"\r\nx"] * (MAX_MIME_PARTS + 1)), TOO_MANY_PARTS),
    "parts-headers": (multipart(*[attachment(b"a\r\n " * 5000)] * 20), PART_HEADERS_TOO_LARGE),
}


@pytest.mark.parametrize("case", PARTS_REFUSED)
def test_a_mime_part_past_the_header_limits_is_refused_at_once(api, domain, case: str) -> None:
    """The review's probe: a part with 400 KB of filename took 5.1 s to accept (the email
    package read its Content-Disposition inside the shared send transaction)."""
    files, message = PARTS_REFUSED[case]
    refused(send(api, domain, [("to", "ann@example.org")], files=files,
                 path="messages.mime"), message)
    assert not_rejected(api, domain) == []


def test_a_multipart_mime_message_with_attachments_is_sent(api, services, domain) -> None:
    queued(send(api, domain, [("to", "ann@example.org")], path="messages.mime", files=multipart(
        TEXT_PART, PDF_PART, attachment(b"notes " * 100 + b".txt"),
        b"Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\nSubject: fwd\r\n\r\nhi",
        boundary=b"=_a b'c")))
    # a boundary-like line in a body, and deep nesting of messages, are read but not refused
    nested = b"Content-Type: message/rfc822\r\n\r\n" * 40 + b"Subject: deep\r\n\r\nhi"
    queued(send(api, domain, [("to", "bob@example.org")], path="messages.mime",
                files=multipart(TEXT_PART + b"\r\n--XXnot\r\n" + b"y" * 200, nested)))
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == ["ann@example.org", "bob@example.org"]
    (event,) = [e for e in events(api, domain, event="delivered")
                if e["recipient"] == "ann@example.org"]
    assert [a["filename"] for a in event["message"]["attachments"]][:2] == [
        "report.pdf", "notes " * 100 + ".txt"]
