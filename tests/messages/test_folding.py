"""Header fields are written in linear time, within RFC 5322's line limits, and read back as
they were given (finding 1 of issue 10: a long Subject took seconds per copy)."""

from __future__ import annotations

import base64
import json
import time
from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest

from mailhaven.messages import content, folding, plain
from mailhaven.messages.document import Document

TEXTS = [
    "Hi", "Your order #5 has shipped", "a  b", "trail ", "tab\there", "x" * 200, "y" * 890,
    "Grüße aus Köln, " * 30, "Привет мир " * 40, "日本語のテキスト" * 40, "emoji 🎉🎉 " * 30,
    "=? not encoded", "a =?b", "50% =?off?= today", "x" * 5000, "a" + " " * 40 + "b",
    "word " * 3000, "wörd " * 3000, "mixed Ü and ASCII " * 80, "line\u2028sep\u2029para\x85nel",
]
NAMES = [("", "ann@example.org"), ("Ann", "ann@example.org"), ("Doe, John", "j@example.org"),
         ("Zoë Ünicode", "z@example.org"), ("Mr. X", "x@example.org"),
         ('a "q" \\ b', "q@example.org"), ("Анна Каренина", "anna@example.org"),
         ("é" * 256, "long@example.org")]


def parsed(field: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(field + b"\r\n\r\n", policy=policy.default)


def check_lines(field: bytes, max_ew: int = folding.MAX_EW) -> None:
    """Lines of 998 octets at most, each a continuation; no encoded word longer than
    `max_ew` (a display name may be one word up to a line, as the email package writes it)."""
    for n, line in enumerate(field.split(b"\r\n")):
        assert len(line) <= folding.MAX_LINE
        assert n == 0 or line[:1] in (b" ", b"\t")  # a continuation, never a field
        assert line.strip(b" \t") or n == 0  # never a line of blanks alone
        for word in line.split():
            if word.startswith(b"=?utf-8?"):
                assert len(word.rstrip(b",")) <= max_ew


@pytest.mark.parametrize("utf8", [False, True])
@pytest.mark.parametrize("text", TEXTS)
def test_text_reads_back_as_given_on_lines_within_the_limits(text: str, utf8: bool) -> None:
    field = folding.text_field("Subject", text, utf8=utf8)
    check_lines(field)
    expected = text.replace("\u2028", " ").replace("\u2029", " ").replace("\x85", " ")
    assert str(parsed(field)["Subject"]) == expected
    if not utf8:
        assert field.isascii()
    for line in field.split(b"\r\n"):
        if b"=?utf-8?" in line:
            assert len(line) <= folding.EW_LINE  # RFC 2047 2


@pytest.mark.parametrize("text", ["Hi", "Your order #5 has shipped", "a  b", "trail ",
                                  "tab\there", "x" * 200, "y" * 890, "(c) [x] <y> 'a' ; : ,"])
def test_plain_text_comes_out_as_the_email_package_wrote_it(text: str) -> None:
    """So the plain fast path (messages/plain.py) and the general one agree byte for byte."""
    package = content.MIME_POLICY.header_factory("Subject", text).fold(
        policy=content.MIME_POLICY).removesuffix("\r\n").encode()
    assert folding.text_field("Subject", text) == package


def test_encoded_words_a_client_wrote_are_read_as_the_text_they_encode() -> None:
    field = folding.text_field("Subject", "=?utf-8?q?caf=C3=A9?= =?utf-8?b?IG9r?= now")
    assert str(parsed(field)["Subject"]) == "café ok now"
    odd = folding.text_field("Subject", "=?x-unknown?q?a?= =?utf-8?b?!!?=")
    assert str(parsed(odd)["Subject"]) == "=?x-unknown?q?a?= =?utf-8?b?!!?="


@pytest.mark.parametrize("utf8", [False, True])
def test_mailboxes_read_back_as_given(utf8: bool) -> None:
    field = folding.mailbox_field("To", NAMES, utf8=utf8)
    check_lines(field, folding.MAX_WORD)
    assert getaddresses([str(parsed(field)["To"])]) == NAMES
    many = [(f"Först Läst {n}", f"first.last{n}@example.org") for n in range(1000)]
    field = folding.mailbox_field("To", many, utf8=utf8)
    check_lines(field)
    assert getaddresses([str(parsed(field)["To"])]) == many


def test_a_group_goes_as_it_is() -> None:
    field = folding.mailbox_field("To", [("", "undisclosed-recipients:;")])
    assert field == b"To: undisclosed-recipients:;"


def test_a_name_too_long_for_one_word_is_split_within_the_limits() -> None:
    """Names are capped at intake; one stored before that still makes lines of 998 or less."""
    field = folding.mailbox_field("To", [("x" * 400_000, "ann@example.org")])
    check_lines(field)
    assert field.endswith(b" <ann@example.org>")


def doc(subject: str, **extra: object) -> Document:
    return Document.load(json.dumps({"v": 1, "message_id": "id@mg.acme.test", "created_at": 0.0,
            "from": "Zoë <a@mg.acme.test>", "to": ["ann@example.org"], "cc": [],
            "subject": subject, "text": "hi", "html": "<p>hi</p>", "amp_html": None,
            "headers": [], "variables": {}, "batch": False, "attachments": [], "mime": None,
            "deliverytime": None, "tracking": {}, "marketing": True, **extra}).encode())


@pytest.mark.parametrize("word", ["word ", "wörd ", "日本 "])
def test_a_huge_header_renders_in_time_linear_in_its_length(word: str) -> None:
    """Before: 128 KB of Subject took 0.5 s a copy, 1 MB 24.5 s, 200 KB non-ASCII 28 s
    (intake now refuses such a Subject; a stored one, or a MIME message's, still renders)."""
    mime = base64.b64encode(b"From: a@mg.acme.test\r\nSubject: s\r\n\r\nbody\r\n").decode()
    for size, check in ((2**18, False), (2**14, True)):
        subject = word * (size // len(word))
        started = time.monotonic()
        form = content.render(doc(subject), "ann@example.org", None)
        raw = content.render(doc("s", headers=[["X-Long", subject]], mime=mime),
                             "ann@example.org", None)
        assert time.monotonic() - started < 5  # ~0.3 s here; ~30 s before
        for message in (form, raw):
            head = message.partition(b"\r\n\r\n")[0]
            assert max(len(line) for line in head.split(b"\r\n")) <= folding.MAX_LINE
        if check:  # the email package reads back in quadratic time: a smaller one
            assert str(message_from_bytes(form, policy=policy.default)["Subject"]) == subject
            assert str(message_from_bytes(raw, policy=policy.default)["X-Long"]) == subject


def test_the_rendered_message_keeps_its_fields_in_order_and_its_body() -> None:
    message = content.render(doc("Grüße", headers=[["Reply-To", "Zoë <z@example.org>"],
                                                   ["MIME-Version", "1.0"],
                                                   ["Content-Type", "text/html"]]),
                             "ann@example.org", None)
    got = message_from_bytes(message, policy=policy.default)
    assert list(got) == ["From", "To", "Subject", "Date", "Message-ID",
                                       "Reply-To", "MIME-Version", "Content-Type"]
    assert got["Content-Type"].content_type == "multipart/alternative"
    assert str(got["Reply-To"]) == "Zoë <z@example.org>"
    assert str(got["From"]) == "Zoë <a@mg.acme.test>"
    assert got.get_body(preferencelist=("plain",)).get_content().strip() == "hi"


def test_fields_the_plain_fast_path_takes_come_out_the_same_on_the_general_one() -> None:
    """messages/plain.py writes `Name: value` for the values it accepts; so must we."""
    from tests.messages.test_plain import VALUES

    taken = [(name, value) for name, values in VALUES.items() for value in values
             if plain._plain_field(name, value) and not name.lower().startswith("content-")]
    assert len(taken) > 15
    for name, value in taken:
        assert content._field(name, value) == f"{name}: {value}".encode(), (name, value)
        if name in ("From", "To", "Cc"):
            items = tuple(item.strip() for item in value.split(","))
            assert content._own_mailboxes(name, items, False) == f"{name}: {value}".encode()
