"""The stored form of a message and the MIME built from it for one recipient.

Content is stored once per message; batch sends keep `%recipient.x%` placeholders and are
rendered per recipient at delivery, so 1000 personalised copies cost one stored body.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, getaddresses

from mailhaven.addresses import header_text, mailbox_pairs, mailbox_parts
from mailhaven.messages import folding, plain, templated
from mailhaven.messages.document import Document
from mailhaven.messages.folding import decode_words
from mailhaven.messages.mime import mime_fields, mime_head

RECIPIENT_VAR = re.compile(r"%recipient\.([^%\s]+)%")
_NEWLINE = re.compile(rb"\r?\n|\r")
# 7-bit bodies (non-ASCII text goes quoted-printable or base64): the receiving server may
# not offer 8BITMIME, and we don't downgrade on the way.
MIME_POLICY = policy.SMTP.clone(max_line_length=998, cte_type="7bit")
# An address that is not ASCII can't be an encoded-word (RFC 2047 §5): such a message
# carries its headers in UTF-8 (RFC 6532), and needs SMTPUTF8 (which implies 8BITMIME).
_UTF8_POLICY = policy.SMTP.clone(max_line_length=998, utf8=True)


@dataclass(frozen=True)
class MessageFacts:
    """What events say about a message (Mailgun's `message` block and friends)."""

    storage_key: str
    message_id: str  # without <>
    headers: dict[str, str]  # to, from, subject
    attachments: list[dict]
    size: int
    tags: list[str]
    user_variables: dict[str, str]
    testmode: bool
    scheduled_for: float | None = None  # o:deliverytime, as the message was accepted
    method: str = "http"  # how the message was submitted: "http" or "smtp"
    template: dict[str, str] | None = None  # Mailgun's {name, version} of a templated send


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Additions:
    """What the platform adds to one recipient's copy (tracking, unsubscribe links): body
    rewrites applied after the customer's variables, and header fields."""

    html: Callable[[str], str] = _same
    text: Callable[[str], str] = _same
    headers: tuple[tuple[str, str], ...] = ()


NO_ADDITIONS = Additions()


def part_text(part: MIMEPart | None) -> str:
    """A text part's content; one in a charset Python doesn't know is read as UTF-8, its
    undecodable bytes replaced, as a mail client would still show it."""
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, AttributeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def attachment_summaries(message: EmailMessage) -> list[dict]:
    """Mailgun's `attachments` list (filename, content type, size) of a parsed message."""
    if not message.is_multipart():
        return []
    return [{"filename": part.get_filename(), "content-type": part.get_content_type(),
             "size": len(part.get_payload(decode=True) or b"")}
            for part in message.iter_attachments()]


def facts(doc: Document, *, storage_key: str, size: int, tags: list[str],
          testmode: bool) -> MessageFacts:
    if doc.mime is not None:
        raw = doc.mime_bytes
        # Read as text, decoded in linear time: the email package's address parsing of a
        # To of many names is quadratic, and this runs as the message is accepted.
        own: dict[str, str] = {}
        for name, value in mime_fields(mime_head(raw)):
            own.setdefault(name, value)
        headers = {name: header_text(decode_words(own.get(name, "")))
                   for name in ("to", "from", "subject")}
        attachments = attachment_summaries(message_from_bytes(raw, policy=policy.default))
    else:
        headers = {"to": ", ".join(doc.to), "from": doc.sender, "subject": doc.subject}
        attachments = [
            {"filename": a.filename, "content-type": a.content_type,
             "size": len(a.content)}
            for a in doc.attachments if not a.inline
        ]
    headers["message-id"] = doc.message_id
    template = None if doc.template is None else {
        "name": doc.template.name, "version": doc.template.version}
    return MessageFacts(storage_key, doc.message_id, headers, attachments, size, tags,
                        dict(doc.variables), testmode, scheduled_for=doc.deliverytime,
                        method=doc.method, template=template)




def for_recipient(facts: MessageFacts, doc: Document, recipient: str,
                  variables: dict) -> MessageFacts:
    """A batch copy's facts: addressed to its own recipient alone, with its own values."""
    filled = {k: substitute(v, variables) for k, v in facts.user_variables.items()}
    return replace(facts, user_variables=filled,
                   headers={**facts.headers, "to": _batch_to(doc, recipient)})


def substitute(text: str, variables: dict | None) -> str:
    if variables is None or "%recipient" not in text:
        return text
    return RECIPIENT_VAR.sub(lambda m: str(variables.get(m.group(1), "")), text)


def crlf(raw: bytes) -> bytes:
    return _NEWLINE.sub(b"\r\n", raw)


def without_message_id(raw: bytes) -> bytes:
    """A MIME message without its own Message-ID field: sent again as a message of its own,
    it gets the new one its document names when rendered."""
    head, blank, body = crlf(raw).partition(b"\r\n\r\n")
    kept = [f for f in _header_fields(head) if _field_name(f) != b"message-id"]
    return b"\r\n".join(kept) + blank + body


def without_mailboxes(raw: bytes, drop: Callable[[str], bool]) -> bytes:
    """A MIME message whose To and Cc fields no longer name the addresses `drop` picks (an
    erased recipient's); a field left naming no one goes, the rest stays byte for byte."""
    head, blank, body = crlf(raw).partition(b"\r\n\r\n")
    fields = []
    for field in _header_fields(head):
        if _field_name(field) in (b"to", b"cc"):
            name, _, value = field.decode("utf-8", "replace").partition(":")
            pairs = getaddresses([value.replace("\r\n", "")])
            kept = [(n, a) for n, a in pairs if not a or not drop(a)]
            if len(kept) < len(pairs):
                if not kept:
                    continue
                field = folding.mailbox_field(name.strip(), kept, utf8=not value.isascii())
        fields.append(field)
    return b"\r\n".join(fields) + blank + body


def render(doc: Document, recipient: str, variables: dict | None,
           additions: Additions = NO_ADDITIONS) -> bytes:
    """The MIME bytes (CRLF) delivered to one recipient."""
    rendered = _render(doc, recipient, variables, additions, general=True)
    assert rendered is not None
    return rendered


def render_plain(doc: Document, recipient: str, variables: dict | None,
                 additions: Additions = NO_ADDITIONS) -> bytes | None:
    """`render` for the message most sends are, written directly (see plain.py): quick, in
    time linear in its size; None for any other message."""
    return _render(doc, recipient, variables, additions, general=False)


def may_be_plain(doc: Document) -> bool:
    """Whether `render_plain` may write the message: a text body alone (it still checks
    the addresses and header values)."""
    return (doc.mime is None and doc.text is not None and doc.html is None
            and doc.amp_html is None and not doc.attachments and doc.template is None)


def _render(doc: Document, recipient: str, variables: dict | None, additions: Additions, *,
            general: bool) -> bytes | None:
    batch_variables = variables if doc.batch else None

    def sub(text: str) -> str:
        return substitute(text, batch_variables)

    def sub_header(text: str) -> str:
        # Variables come from the client's JSON: whatever they hold stays in its header.
        return header_text(sub(text))

    if doc.template is not None:  # rendered in the render pool only: it is bounded there
        if not general:
            return None
        doc = templated.applied(doc, batch_variables, sub, MIME_POLICY)

    if doc.mime is not None:
        return _render_mime(doc, sub_header, additions.headers) if general else None

    # Display names are encoded-words by now (Address.formatted): only an address isn't ASCII.
    international = not all(a.isascii() for a in (doc.sender, recipient, *doc.to, *doc.cc))
    to = (_batch_to(doc, recipient),) if doc.batch else tuple(doc.to)
    fields = [("From", doc.sender), ("To", ", ".join(to))]
    # Our own address fields, by position: their mailboxes as Address.formatted wrote them.
    ours = {0: (doc.sender,), 1: to}
    if doc.cc:
        ours[2] = tuple(doc.cc)
        fields.append(("Cc", ", ".join(doc.cc)))
    fields += [("Subject", sub_header(doc.subject)),
               ("Date", format_datetime(datetime.fromtimestamp(doc.created_at, UTC))),
               # the client's own h:Message-ID, if it gave one
               ("Message-ID", f"<{doc.message_id}>")]
    fields += [(name, sub_header(value)) for name, value in doc.headers
               if name.lower() != "message-id"]
    if doc.variables:
        user_vars = {k: sub(v) for k, v in doc.variables.items()}
        fields.append(("X-Mailgun-Variables", json.dumps(user_vars)))
    fields += additions.headers
    if (not international and may_be_plain(doc)
            and len({n.lower() for n, _ in fields}) == len(fields)):
        rendered = plain.render_text(fields, additions.text(sub(doc.text or "")))
        if rendered is not None:
            return rendered
    if not general:
        return None
    msg = EmailMessage(policy=_UTF8_POLICY if international else MIME_POLICY)
    _add_body(msg, doc, lambda t: additions.text(sub(t)), lambda h: additions.html(sub(h)))
    # The email package writes the body and its own fields (Content-*, MIME-Version); the
    # others are written here, in time linear in their length. A client's Content-* field
    # gives way to the body's, as set_content has it; a client's MIME-Version stays.
    head = [_own_mailboxes(fields[i][0], ours[i], international) if i in ours
            else _field(*fields[i], international)
            for i in _unique(fields) if not fields[i][0].lower().startswith("content-")]
    body = msg.as_bytes()
    if any(name.lower() == "mime-version" for name, _ in fields):
        body = _without_mime_version(body)
    return b"\r\n".join(head) + b"\r\n" + body


@functools.lru_cache(maxsize=256)
def _field(name: str, value: str, utf8: bool = False) -> bytes:
    """One field of the client's (or ours, but an address list): the mailboxes of an
    address field where its value is a list of them, a structured field as written, else
    text. Kept a while: the copies of a message share most of their fields."""
    if name.lower() in folding.ADDRESS_FIELDS and (pairs := mailbox_pairs(value)):
        return folding.mailbox_field(name, pairs, utf8=utf8)
    if folding.is_structured(name):
        return folding.structured_field(name, value, utf8=utf8)
    return folding.text_field(name, value, utf8=utf8)


@functools.lru_cache(maxsize=64)
def _own_mailboxes(name: str, mailboxes: tuple[str, ...], utf8: bool) -> bytes:
    """From, To or Cc as accepted (`undisclosed-recipients:;` included); kept a while, as
    each copy of a message to many has the same To."""
    return folding.mailbox_field(name, map(mailbox_parts, mailboxes), utf8=utf8)


def _without_mime_version(body: bytes) -> bytes:
    head, blank, rest = body.partition(b"\r\n\r\n")
    kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"mime-version:")]
    return b"\r\n".join(kept) + blank + rest


def _render_mime(doc: Document, sub_header: Callable[[str], str],
                 extra: tuple[tuple[str, str], ...]) -> bytes:
    """The client's MIME with the `h:` headers and `v:` variables given beside it on top.
    A header a message may carry once is replaced, not doubled (two From or Subject fields
    get a copy refused or misread): the request's value wins, as on `/messages`."""
    added = [(name, sub_header(value)) for name, value in doc.headers
             if name.lower() != "message-id"]  # the message's own, or ours below
    if doc.variables:
        user_vars = {k: sub_header(v) for k, v in doc.variables.items()}
        added.append(("X-Mailgun-Variables", json.dumps(user_vars)))
    head = crlf(doc.mime_bytes).partition(b"\r\n\r\n")[0].lower()
    added += [(n, v) for n, v in extra if f"\n{n.lower()}:".encode() not in b"\n" + head]
    added = _last_of_unique(added)
    replaced = {name.lower().encode() for name, _ in added
                if name.lower() == "x-mailgun-variables"
                or MIME_POLICY.header_max_count(name) == 1}
    head, blank, body = crlf(doc.mime_bytes).partition(b"\r\n\r\n")
    kept = [f for f in _header_fields(head) if _field_name(f) not in replaced]
    ours = [_field(name, value) for name, value in added]
    if not any(_field_name(f) == b"message-id" for f in kept):
        ours.insert(0, f"Message-ID: <{doc.message_id}>".encode())
    return b"\r\n".join([*ours, *kept]) + blank + body


def _last_of_unique(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields, with only the last of those a message may carry once."""
    return [fields[i] for i in _unique(fields)]


def _unique(fields: list[tuple[str, str]]) -> list[int]:
    """The positions of the fields kept: of those a message may carry once, the last."""
    last = {name.lower(): i for i, (name, _) in enumerate(fields)}
    return [i for i, (name, _) in enumerate(fields)
            if MIME_POLICY.header_max_count(name) != 1 or last[name.lower()] == i]


def _header_fields(head: bytes) -> list[bytes]:
    """The fields of a CRLF header block, each with its folded continuation lines."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def _field_name(field: bytes) -> bytes:
    return field.partition(b":")[0].strip().lower()


def _batch_to(doc: Document, recipient: str) -> str:
    """A batch copy is addressed to its own recipient alone; a cc or bcc recipient's copy
    names no one, so neither the batch nor a bcc shows up in a header."""
    return recipient if recipient in doc.to else "undisclosed-recipients:;"


def _add_body(msg: EmailMessage, doc: Document, sub_text: Callable[[str], str],
              sub_html: Callable[[str], str]) -> None:
    text, html = doc.text, doc.html
    if text is not None:
        msg.set_content(sub_text(text))
    if html is not None:
        if text is not None:
            msg.add_alternative(sub_html(html), subtype="html")
        else:
            msg.set_content(sub_html(html), subtype="html")
    elif text is None and doc.amp_html is not None:
        msg.set_content(sub_html(doc.amp_html), subtype="html")
    inline = [a for a in doc.attachments if a.inline]
    html_part = msg.get_body(preferencelist=("html",)) if inline and html is not None else None
    if html_part is not None:
        for a in inline:
            maintype, _, subtype = a.content_type.partition("/")
            html_part.add_related(a.content, maintype or "application",
                                  subtype or "octet-stream", cid=f"<{a.filename}>",
                                  filename=a.filename, disposition="inline")
    for a in doc.attachments:
        if a.inline and html is not None:
            continue
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.content, maintype or "application",
                           subtype or "octet-stream", filename=a.filename,
                           disposition="inline" if a.inline else "attachment")
