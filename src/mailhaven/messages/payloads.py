"""A message's big parts (attachments, a .mime body) encoded once and shared by its copies.

A copy is rendered from a *light* document, whose payloads are stand-ins a line long, and
the encoded payloads take the stand-ins' places afterwards. So what differs between the
copies of a message (headers, a tracked body) is built per copy, what doesn't (a 24 MB
attachment) once per message: the renderer never sees it, and DKIM hashes it as it is
(a base64 block has nothing for canonicalisation to change).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage

from dkim.canonicalization import CanonicalizationPolicy

from mailhaven.messages.content import MIME_POLICY, crlf

# render's own policy and line ends: a payload must come out as render would write it
from mailhaven.messages.document import Document

_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_BLANK = b"\r\n\r\n"


@dataclass(frozen=True)
class Payload:
    """What replaces the line `marker` of a light rendering: `data` in the message, and
    `canonical` (its relaxed DKIM canonical form, in its place) in the body hash."""

    marker: bytes  # the line, CRLF included
    data: bytes
    canonical: bytes


@dataclass(frozen=True)
class Light:
    """A stored document with its payloads replaced by markers, and the payloads."""

    doc: Document
    payloads: tuple[Payload, ...]

    @property
    def size(self) -> int:
        return sum(len(p.data) for p in self.payloads)


@dataclass(frozen=True)
class Rendered:
    """A copy rendered from a light document: `light`, the bytes with the markers, and the
    payloads that go in their places."""

    light: bytes
    payloads: tuple[Payload, ...]

    def pieces(self) -> Iterator[bytes]:
        """The message, in pieces: the light rendering's, and the payloads'."""
        return _filled(self.light, self.payloads, canonical=False)

    def canonical_body(self, light_body: bytes) -> Iterator[bytes]:
        """The relaxed canonical body in pieces, from the light rendering's body."""
        return _filled(_RELAXED.canonicalize_body(light_body), self.payloads, canonical=True)

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces())


def _filled(light: bytes, payloads: tuple[Payload, ...], *, canonical: bool) -> Iterator[bytes]:
    found = sorted(((_line_at(light, p.marker), p) for p in payloads), key=lambda f: f[0])
    start = 0
    for at, payload in found:
        yield light[start:at]
        yield payload.canonical if canonical else payload.data
        start = at + len(payload.marker)
    yield light[start:]


def _line_at(light: bytes, marker: bytes) -> int:
    if light.startswith(marker):  # the body of a .mime message, alone
        return 0
    at = light.find(b"\n" + marker)
    if at < 0:
        raise ValueError("a payload's marker is missing from the rendered message")
    return at + 1


def lighten(doc: Document) -> Light:
    """The light form of a stored document: each attachment's data, or a .mime message's
    body, replaced by a marker of its own."""
    token = secrets.token_hex(12)  # no client can know, so none can write it in a message
    if doc.mime is not None:
        # A template replaces a .mime message's body: it is rendered whole.
        return _lighten_mime(doc, token) if doc.template is None else Light(doc, ())
    attachments, payloads = [], []
    for i, attachment in enumerate(doc.attachments):
        stand_in = f"mailhaven payload {token} {i}".encode()
        marker = base64.b64encode(stand_in) + b"\r\n"  # the line add_attachment makes of it
        block = _base64_block(attachment.content)
        payloads.append(Payload(marker, block, block))  # base64 lines: nothing to canonicalise
        attachments.append(replace(attachment, data=base64.b64encode(stand_in).decode()))
    return Light(replace(doc, attachments=attachments), tuple(payloads))


def _lighten_mime(doc: Document, token: str) -> Light:
    head, blank, body = crlf(doc.mime_bytes).partition(_BLANK)
    if not blank:
        return Light(doc, ())
    marker = f"mailhaven-payload-{token}\r\n".encode()
    light = base64.b64encode(head + blank + marker).decode()
    # The body is all of the copy's body: its canonical form is the whole body's.
    return Light(replace(doc, mime=light),
                 (Payload(marker, body, _RELAXED.canonicalize_body(body)),))


def _base64_block(data: bytes) -> bytes:
    """`data` as `content.render` writes an attachment's body: the email package's base64
    lines (as long as the policy allows), CRLF-terminated."""
    part = EmailMessage(policy=MIME_POLICY)
    part.set_content(data, "application", "octet-stream")
    return str(part.get_payload()).replace("\n", "\r\n").encode("ascii")
