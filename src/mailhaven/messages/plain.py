"""The common message, ASCII with a text body, rendered without the email package."""

# `content.render` builds MIME with `email.message.EmailMessage`, whose header registry
# parses every value it is given and refolds it: most of the CPU of a delivery. For the
# message most sends are (ASCII, a text body, no attachments, header values that parse
# back to themselves) those steps change nothing, so the bytes are written directly.
# Anything else gets None and takes the general path; tests/sending/test_plain.py checks
# that both paths give the same bytes.

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_ATOM = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"  # RFC 5322 atext, without "=" and "?" (encoded words)
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDRESS = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_WORD = r"[A-Za-z0-9_+-]+"  # a display name's words that need no quoting
_MAILBOX = rf"(?:{_WORD}(?: {_WORD})* <{_ADDRESS}>|{_ADDRESS})"
MAILBOXES = re.compile(rf"{_MAILBOX}(?:, {_MAILBOX})*")
MESSAGE_ID = re.compile(rf"<{_ADDRESS}>")
# Printable ASCII words split by single spaces: unstructured values the parser keeps as is.
UNSTRUCTURED = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
MAX_FIELD = 900  # a header field this long or longer may be folded (the limit is 998)
MAX_BODY_LINE = 998
# Fields the email package parses as more than unstructured text.
STRUCTURED = frozenset({
    "bcc", "cc", "content-disposition", "content-transfer-encoding", "content-type", "date",
    "from", "message-id", "mime-version", "orig-date", "reply-to", "resent-bcc", "resent-cc",
    "resent-date", "resent-from", "resent-sender", "resent-to", "sender", "subject", "to"})
_ADDRESS_FIELDS = frozenset({"from", "to", "cc"})
_TEXT_HEAD = (b'Content-Type: text/plain; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\n")


def _plain_field(name: str, value: str) -> bool:
    if len(name) + len(value) + 2 >= MAX_FIELD or "=?" in value:
        return False
    lower = name.lower()
    if lower in _ADDRESS_FIELDS:
        return MAILBOXES.fullmatch(value) is not None
    if lower == "message-id":
        return MESSAGE_ID.fullmatch(value) is not None
    if lower == "date":
        return True  # format_datetime's own output: it parses back to itself
    if lower in STRUCTURED and lower != "subject":
        return False
    return UNSTRUCTURED.fullmatch(value) is not None


def render_text(fields: Sequence[tuple[str, str]], text: str) -> bytes | None:
    """`fields` and a text/plain body as EmailMessage (7-bit, CRLF) would write them, or
    None when they may not come out as given."""
    if not text.isascii() or not all(_plain_field(n, v) for n, v in fields):
        return None
    lines = text.encode("ascii").splitlines()
    if any(len(line) > MAX_BODY_LINE for line in lines):
        return None
    head = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("ascii")
    return head + _TEXT_HEAD + (b"".join(_crlf_lines(lines)) or b"\r\n")


def _crlf_lines(lines: Iterable[bytes]) -> Iterable[bytes]:
    for line in lines:
        yield line + b"\r\n"
