"""The plain-text fast path writes exactly the bytes the email package would, or declines;
and the common send, as the API stores it, takes it."""

from __future__ import annotations

import itertools
from email.message import EmailMessage

import pytest

from mailhaven.messages import content, plain
from mailhaven.messages.document import Document
from mailhaven.sending.request import build_request

DATE = "Sun, 29 Nov 2026 23:16:30 +0000"
BASE = [("From", "Shop <orders@mg.example.com>"), ("To", "Customer 5 <user5@d5.example>"),
        ("Subject", "Your order #5 has shipped"), ("Date", DATE),
        ("Message-ID", "<20261129231630.69422569b3a618ec@mg.example.com>")]
VALUES = {
    "From": ["orders@mg.example.com", "Shop Team <a.b@mg.example.com>", "Mr. X <x@y.example>",
             '"Quoted" <q@y.example>', "=?utf-8?q?Caf=C3=A9?= <c@y.example>",
             "Two  Spaces <t@y.example>", "a@b.example, C D <c@d.example>", "<bare@y.example>",
             "Shop (team) <s@y.example>", "x_y+z-1 <x@y.example>"],
    "To": ["Customer 5 <user5@d5.example>", "a@b.example, c@d.example", "undisclosed:;",
           "Ünïcode <u@y.example>"],
    "Cc": ["c@d.example", "C D <c@d.example>, e@f.example"],
    "Subject": ["Hi", "Your order #5 has shipped", "=?utf-8?q?x?=", "a  b", " lead", "trail ",
                "tab\there", "(comment) [x] <y> \"q\" 'a' ; : , . @", "x" * 200, "y" * 890,
                "mixed Ü", "=? not encoded", "a =?b"],
    "Message-ID": ["<20261129.abc@mg.example.com>", "<no-at>", "<a b@c>", "a@b.example"],
    "Reply-To": ["r@y.example", "Reply <r@y.example>"],
    "X-Mailgun-Variables": ['{"order-id": "5", "campaign": "bench"}', '{"a": "b  c"}',
                            '{"u": "\\u00fc"}'],
    "List-Unsubscribe": ["<https://t.example/u/abc>", "<https://t.example/u/" + "z" * 1000 + ">"],
    "List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"],
    "X-Custom": ["anything: goes; here", "", "Ça"],
    "Content-Type": ["text/html"],
    "MIME-Version": ["1.0"],
}
TEXTS = ["Hello 5,\n\nYour order has shipped.\n", "no newline at the end", "", "\n",
         "crlf\r\nlines\r\n", "cr\ronly\r", "From the start\n.\n..\n",
         "trailing space \nand tab\t\n", "x" * 998 + "\n", "x" * 999 + "\n", "naïve\n",
         "form\x0cfeed\x0bvtab\x1cfs\n", "tabs\tin\tthe\tmiddle"]


def general(fields: list[tuple[str, str]], text: str) -> bytes:
    """What content.render's general path writes for these fields and this text."""
    msg = EmailMessage(policy=content.MIME_POLICY)
    for name, value in fields:
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes()


def cases() -> list[tuple[list[tuple[str, str]], str]]:
    out = []
    for name, values in VALUES.items():
        for value in values:
            fields = [(n, value if n == name else v) for n, v in BASE]
            if name not in dict(BASE):
                fields.append((name, value))
            out.append((fields, TEXTS[0]))
    out += [(BASE, text) for text in TEXTS]
    return out


@pytest.mark.parametrize(("fields", "text"), cases())
def test_the_fast_path_writes_the_same_bytes_or_declines(fields: list[tuple[str, str]],
                                                         text: str) -> None:
    try:
        expected = general(fields, text)
    except ValueError:  # the email package refuses it: the fast path must not take it
        assert plain.render_text(fields, text) is None
        return
    fast = plain.render_text(fields, text)
    assert fast is None or fast == expected


def test_the_common_fields_take_the_fast_path() -> None:
    for fields, text in itertools.product(
            [BASE, [*BASE, ("X-Mailgun-Variables", '{"order-id": "5"}'),
                    ("List-Unsubscribe", "<https://t.example/u/abc>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]],
            TEXTS[:3]):
        assert plain.render_text(fields, text) == general(fields, text)


COMMON_SEND = [("from", "Shop <orders@mg.example.com>"), ("to", "Customer 5 <user5@d5.example>"),
               ("subject", "Your order #5 has shipped"), ("text", TEXTS[0])]
# What `set_content` writes after the fields it is given.
BODY_FIELDS = (b"Content-Type:", b"Content-Transfer-Encoding:", b"MIME-Version:")


def _stored(fields: list[tuple[str, str]]) -> Document:
    """The document the API stores for a send of these form fields (sealed as JSON, read
    back)."""
    return Document.load(build_request(fields, []).document(
        message_id="20261129.abc@mg.example.com", created_at=1796080590.0).dump())


@pytest.mark.parametrize("extra", [[], [("v:order-id", "5"), ("h:X-Campaign", "spring")],
                                   [("o:tag", "orders")]])
def test_the_common_send_is_delivered_by_the_fast_path(extra: list[tuple[str, str]]) -> None:
    """What a delivery of the most common send runs. The general path would write the same
    bytes, ~40 times slower in a render process, and nothing else would notice a fast path
    that stopped being taken: `render_plain` must write it, as the email package would."""
    doc = _stored(COMMON_SEND + extra)
    fast = content.render_plain(doc, "user5@d5.example", None)
    assert fast is not None, "the common send no longer takes the fast path"
    head = fast.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = [tuple(line.decode().split(": ", 1)) for line in head
              if not line.startswith(BODY_FIELDS)]
    assert fast == general(fields, doc.text)  # type: ignore[arg-type]
