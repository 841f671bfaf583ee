"""A captured message taken apart for the mailbox's pages: bodies, headers, attachments."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from urllib.parse import unquote

from mailhaven.messages.downloads import SAFE_TYPE

CID_REFERENCE = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Attachment:
    filename: str  # as the message names it, or a name made from its position and type
    content_type: str
    data: bytes
    inline: bool
    content_id: str  # without its angle brackets; "" when it has none


@dataclass(frozen=True)
class Opened:
    sender: str
    to: str
    subject: str
    date: str
    text: str | None
    html: str | None  # cid: images already replaced by data: URLs
    headers: list[tuple[str, str]]
    attachments: list[Attachment]


def open_message(data: bytes) -> Opened:
    """Read a message as received; whatever is malformed is shown as it is, never raised."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessages
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    bodies = [p for p in (text_part, html_part) if p is not None]
    attachments = [_attachment(part, n) for n, part in enumerate(
        p for p in _leaves(message) if not any(p is body for body in bodies))]
    headers = _headers(message)
    first = {name.lower(): value for name, value in reversed(headers)}
    html = None if html_part is None else _inline_images(_text(html_part), attachments)
    return Opened(first.get("from", ""), first.get("to", ""), first.get("subject", ""),
                  first.get("date", ""), None if text_part is None else _text(text_part),
                  html, headers, attachments)


def _leaves(part: Message) -> Iterator[Message]:
    """The parts that hold content; an attached message is one part, not opened."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield part


def _headers(message: EmailMessage) -> list[tuple[str, str]]:
    shown = []
    for name, raw in message.raw_items():
        try:
            value = str(policy.default.header_fetch_parse(name, raw))
        except Exception:  # a malformed header: shown as it came
            value = str(raw)
        shown.append((name, value))
    return shown


def _text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, ValueError):  # an unknown charset, a broken encoding
        pass
    return _payload(part).decode("utf-8", "replace")


def _payload(part: Message) -> bytes:
    if part.is_multipart():  # message/rfc822: the attached message as received
        inner = part.get_payload(0)
        if not isinstance(inner, Message):
            return b""
        try:
            return inner.as_bytes(policy=policy.default)
        except (LookupError, ValueError, TypeError):
            return str(inner).encode("utf-8", "replace")
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _attachment(part: Message, n: int) -> Attachment:
    content_type = part.get_content_type()
    if not SAFE_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    try:
        filename = part.get_filename() or ""
    except (LookupError, ValueError):
        filename = ""
    if not filename:
        filename = f"part-{n + 1}.{content_type.rsplit('/', 1)[-1]}"
    content_id = str(part.get("Content-ID", "")).strip().strip("<>")
    return Attachment(filename, content_type, _payload(part),
                      part.get_content_disposition() == "inline" or bool(content_id),
                      content_id)


def _inline_images(html: str, attachments: list[Attachment]) -> str:
    """`cid:` references to the message's own images become `data:` URLs: shown without a
    request, which the frame's policy (`img-src data:`) allows and nothing remote."""
    images = {a.content_id.lower(): a for a in attachments
              if a.content_id and a.content_type.startswith("image/")}

    def inline(found: re.Match[str]) -> str:
        image = images.get(unquote(found.group(1)).lower())
        if image is None:
            return found.group(0)
        return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"

    return CID_REFERENCE.sub(inline, html) if images else html
