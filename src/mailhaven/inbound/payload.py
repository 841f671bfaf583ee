"""Mailgun's inbound POST, made from a received message: a pure function of the raw MIME,
the envelope recipient and sender (and, for store(), where the stored copy is).

Three shapes, as Mailgun sends them:
- forward("https://…"), fully parsed: `recipient`, `sender`, `from`, `subject`,
  `body-plain`, `stripped-text`, `stripped-signature`, `body-html`, `stripped-html`,
  `attachment-count`, `content-id-map` (cid → attachment-N), `message-headers` (a JSON list
  of [name, value], in order), every header as a field of its own, and the attachments as
  files `attachment-1…N` (multipart/form-data then; urlencoded without attachments);
- forward("https://…mime…") (`wants_mime`): `recipient`, `sender`, `from`, `subject`, `body-mime`;
- store(notify="https://…"): the parsed fields, but the attachments as URLs (`attachments`
  JSON, `content-id-map` cid → URL, no `attachment-count`), with `domain` and
  `message-url`; the message-url's JSON has them too, its `content-id-map` mapping a cid
  to the attachment's object (mailgun-go's StoredMessage).
Signing (`timestamp`, `token`, `signature`) is added at send time (`signed`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from mailparser_reply import EmailReplyParser

from mailhaven.errors import BadRequest
from mailhaven.messages.content import part_text
from mailhaven.messages.folding import decode_words
from mailhaven.messages.html_text import html_to_text
from mailhaven.messages.mime import mime_head
from mailhaven.sending.request import _check_parts
from mailhaven.webhooks.service import sign

# mail-parser-reply's regular expressions take time about (text length) x (longest line):
# 12 KB on one line took 8.6 s. It reads a text within both limits (32 KB: 1.8 s at worst,
# ~50 ms for mail as people write it; 998 is RFC 5322's longest line); any other text is
# cut at its first quote marker instead (`_before_quote`), in one linear pass.
MAX_STRIP_CHARS = 32_000
MAX_STRIP_LINE = 998
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "cs", "ja"]
# Where a mail client starts the quoted message in its HTML (Gmail, Apple Mail and
# Thunderbird, Outlook): stripped-html is the HTML before the first of them. Found by a
# scan of bounded tokens (`stripped_html`): a pattern like `<div[^>]*class=` takes time
# quadratic in a run of unclosed `<div`s (16,000 of them: 27 s).
_HTML_TOKENS = re.compile(r"<blockquote\b|<div|>|\b(?:class|id)=[\"']?(?:gmail_quote|"
                          r"moz-cite-prefix|appendonsend|divRplyFwdMsg)", re.IGNORECASE)
# A plain-text quote: `>` lines, Outlook's "-----Original Message-----".
_QUOTE_LINE = re.compile(r"[ \t]*(?:>|-{2,}[ \t]*Original Message[ \t]*-{2,})", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


@dataclass(frozen=True)
class Upload:
    """A file of a multipart POST."""

    field: str  # attachment-N
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Payload:
    fields: Sequence[tuple[str, str | bytes]]  # bytes: sent as they are (`body-mime`)
    files: list[Upload] = field(default_factory=list)


@dataclass(frozen=True)
class Attachment:
    """A part of the message that is no body: an attachment or an inline (cid) image."""

    filename: str
    content_type: str
    content_id: str | None  # with its <>, as Mailgun's content-id-map keys are
    data: bytes


@dataclass(frozen=True)
class Parsed:
    """What every parsed shape is made of."""

    headers: list[tuple[str, str]]
    subject: str
    from_: str
    plain: str
    html: str | None  # None: the message has no HTML part
    attachments: list[Attachment]


def mailgun_name(name: str) -> str:
    """A header name as Mailgun writes it: `Message-Id`, `Mime-Version`, `X-Mailgun-Sflag`."""
    return "-".join(part.capitalize() for part in name.split("-"))


def header_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The header fields in order, names as Mailgun writes them, values unfolded and their
    encoded words decoded (read in linear time, without the email package)."""
    pairs: list[tuple[str, list[bytes]]] = []
    for line in mime_head(raw):
        if line[:1] in (b" ", b"\t") and pairs:
            pairs[-1][1].append(line)
        elif b":" in line:
            name, _, rest = line.partition(b":")
            pairs.append((name.strip().decode("ascii", "replace"), [rest]))
    return [(mailgun_name(name), decode_words(
        _FOLD.sub("", b"".join(value).decode("utf-8", "replace")).strip()))
        for name, value in pairs if name]


class Unparseable(ValueError):
    """A message whose parts the email package can't read safely (nested past
    MAX_MIME_DEPTH, too many parts, a part's header too long): it recurses once per level
    (3,000 nested multiparts: a RecursionError) and reads long part headers slowly."""


def message_of(raw: bytes) -> EmailMessage:
    """`raw` parsed, once its parts are known to be within the limits of a message we send
    (`sending.request`, checked in one linear pass); Unparseable otherwise."""
    try:
        _check_parts(raw, mime_head(raw))
    except BadRequest as exc:
        raise Unparseable(exc.message) from None
    try:
        message = message_from_bytes(raw, policy=policy.default)
    except RecursionError:  # a shape the check did not foresee
        raise Unparseable("parts nested too deeply to be read") from None
    assert isinstance(message, EmailMessage)
    return message


def parse(raw: bytes) -> Parsed:
    """The message's fields, bodies and attachments; Unparseable for one we can't read."""
    try:
        return _parse(message_of(raw), raw)
    except RecursionError:
        raise Unparseable("parts nested too deeply to be read") from None


def _parse(message: EmailMessage, raw: bytes) -> Parsed:
    headers = header_pairs(raw)
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    plain_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    html = part_text(html_part) if html_part is not None else None
    plain = part_text(plain_part) if plain_part is not None else (
        html_to_text(_closed_tags(html)) if html else "")
    bodies = {id(p) for p in (plain_part, html_part) if p is not None}
    return Parsed(headers, first.get("Subject", ""), first.get("From", ""), plain, html,
                  attachments(message, bodies))


def attachments(message: EmailMessage, bodies: set[int] | None = None) -> list[Attachment]:
    """Every leaf part that is not one of the bodies (`bodies`: their ids), in order: files
    and inline images alike, as Mailgun counts them."""
    if bodies is None:
        bodies = {id(p) for p in (message.get_body(preferencelist=("plain",)),
                                  message.get_body(preferencelist=("html",))) if p is not None}
    found: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart() or id(part) in bodies or part is message:
            continue
        data = part.get_payload(decode=True)
        cid = part.get("Content-ID")
        found.append(Attachment(
            filename=part.get_filename() or _default_name(part, len(found) + 1),
            content_type=part.get_content_type(),
            content_id=str(cid).strip() if cid else None,
            data=data if isinstance(data, bytes) else b""))
    return found


def _default_name(part: MIMEPart, n: int) -> str:
    subtype = part.get_content_subtype()
    return f"attachment-{n}.{subtype}" if subtype.isalnum() else f"attachment-{n}"



def _closed_tags(html: str) -> str:
    """The HTML with the `<`s after its last `>` written as text: Python's HTMLParser reads
    a run of tags that never close in quadratic time ("<div " x 40,000: 170 s); as text they
    are what a browser would show of them anyway."""
    end = html.rfind(">") + 1
    return html[:end] + html[end:].replace("<", "&lt;")


def _readable(plain: str) -> bool:
    """Whether mail-parser-reply may read `plain` in bounded time (MAX_STRIP_*)."""
    if len(plain) > MAX_STRIP_CHARS:
        return False
    return all(len(line) <= MAX_STRIP_LINE for line in plain.split("\n"))


def _before_quote(plain: str) -> str:
    """The text before its first quoted line (and the "On … wrote:" line that introduces
    it, a non-blank line ending in `:` just before): the stripped-text of a text too long
    for the reply parser. The whole text when nothing is quoted."""
    lines = plain.split("\n")
    for n, line in enumerate(lines):
        if _QUOTE_LINE.match(line):
            head = lines[:n]
            while head and not head[-1].strip():
                head.pop()
            if head and head[-1].rstrip().endswith(":"):
                head.pop()
            return "\n".join(head).rstrip()
    return plain


def stripped(plain: str) -> tuple[str, str]:
    """(stripped-text, stripped-signature): the reply without the quoted message and the
    signature, read by mail-parser-reply (its English and nine other languages' quote
    headers and signatures); a text past its limits is cut at its first quote marker, its
    signature left in."""
    if not plain.strip():
        return plain, ""
    if not _readable(plain):
        return _before_quote(plain), ""
    try:
        replies = EmailReplyParser(languages=REPLY_LANGUAGES).read(plain).replies
    except Exception:  # a parser's failure leaves the text whole, never fails the POST
        return plain, ""
    if not replies:
        return plain, ""
    return replies[0].body or "", replies[0].signatures or ""


def stripped_html(html: str) -> str:
    """The HTML before the first quoted block a mail client wrote (a documented heuristic:
    Gmail's `gmail_quote`, Thunderbird's `moz-cite-prefix`, Outlook's `appendonsend`,
    `<blockquote>`), its body closed again. Where `<div …class="gmail_quote"` starts is
    where the first `<div` since the last `>` starts, as the tokens come: one pass."""
    at = _quote_start(html)
    if at is None:
        return html
    return html[:at] + ("</body></html>" if _BODY_END.search(html) else "")


def _quote_start(html: str) -> int | None:
    div: int | None = None  # the first `<div` of the tag being read
    blockquote: int | None = None  # one inside that tag: it counts if the div doesn't
    for token in _HTML_TOKENS.finditer(html):
        text = token.group()
        if text == ">":
            if blockquote is not None:
                return blockquote
            div = None
        elif text[:2].lower() == "<b":
            if div is None:
                return token.start()
            if blockquote is None:
                blockquote = token.start()
        elif text[:2].lower() == "<d":
            div = token.start() if div is None else div
        elif div is not None:  # a quote's class or id, within a div's tag
            return div
    return blockquote


def _basics(parsed: Parsed, recipient: str, sender: str) -> list[tuple[str, str]]:
    """The fields every parsed shape starts with; `body-html` and `stripped-html` only for
    a message with an HTML part (so django-anymail's `message.html` is None for plain mail,
    as from Mailgun)."""
    text, signature = stripped(parsed.plain)
    basics = [("recipient", recipient), ("sender", sender), ("from", parsed.from_),
              ("subject", parsed.subject), ("body-plain", parsed.plain),
              ("stripped-text", text), ("stripped-signature", signature)]
    if parsed.html is not None:
        basics += [("body-html", parsed.html), ("stripped-html", stripped_html(parsed.html))]
    return basics


def _each_header(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every header as a field of its own (the first of a name, as a form keeps one)."""
    seen: dict[str, str] = {}
    for name, value in headers:
        seen.setdefault(name, value)
    return list(seen.items())


def forwarded(raw: bytes, *, recipient: str, sender: str) -> Payload:
    """forward("https://…"): the fully parsed POST, attachments as files."""
    parsed = parse(raw)
    uploads = [Upload(f"attachment-{n}", a.filename, a.content_type, a.data)
               for n, a in enumerate(parsed.attachments, start=1)]
    cids = {a.content_id: f"attachment-{n}"
            for n, a in enumerate(parsed.attachments, start=1) if a.content_id}
    fields = [*_basics(parsed, recipient, sender),
              ("attachment-count", str(len(uploads))),
              ("content-id-map", json.dumps(cids)),
              ("message-headers", json.dumps([list(h) for h in parsed.headers])),
              *_each_header(parsed.headers)]
    return Payload(fields, uploads)


def mime_forwarded(raw: bytes, *, recipient: str, sender: str) -> Payload:
    """forward("https://…mime"): the message as received, in `body-mime`, its bytes as they
    are (percent-encoded in the urlencoded body): a receiver that reads the field as bytes
    gets the very message, 8-bit parts too; one that reads it as UTF-8 text (Django, and so
    django-anymail's `request.POST["body-mime"]`) gets a UTF-8 or ASCII message exactly,
    and only another 8-bit charset's bytes replaced. Decoding it here (as UTF-8 with
    replacement, or as Latin-1, which Django would turn into mojibake) would lose bytes for
    every receiver."""
    first = dict(reversed(header_pairs(raw)))
    return Payload([("recipient", recipient), ("sender", sender),
                    ("from", first.get("From", "")), ("subject", first.get("Subject", "")),
                    ("body-mime", raw)])


def attachment_url(message_url: str, n: int) -> str:
    """Where a stored message's attachment is fetched (n from 0, as Mailgun numbers them)."""
    return f"{message_url}/attachments/{n}"


def stored_fields(raw: bytes, *, recipient: str, sender: str, domain: str,
                  message_url: str) -> dict[str, Any]:
    """A stored inbound message as Mailgun's message-url returns it (JSON): attachments as
    objects with their URLs ({url, content-type, name, size}), in `attachments` and by
    content id in `content-id-map`."""
    try:
        parsed = parse(raw)
    except Unparseable:  # its header is read in one pass: what can be said of it
        return _unparsed_fields(raw, recipient=recipient, sender=sender, domain=domain,
                                message_url=message_url)
    listed = [{"url": attachment_url(message_url, n), "content-type": a.content_type,
               "name": a.filename, "size": len(a.data)}
              for n, a in enumerate(parsed.attachments)]
    # cid → the attachment's object, as mailgun-go's StoredMessage reads it
    cids = {a.content_id: listed[n] for n, a in enumerate(parsed.attachments) if a.content_id}
    view: dict[str, Any] = dict(_basics(parsed, recipient, sender))
    view |= {"domain": domain, "recipients": recipient, "message-url": message_url,
             "attachments": listed, "content-id-map": cids,
             "message-headers": [list(h) for h in parsed.headers]}
    for name, value in _each_header(parsed.headers):
        view.setdefault(name, value)
    return view


def _unparsed_fields(raw: bytes, *, recipient: str, sender: str, domain: str,
                     message_url: str) -> dict[str, Any]:
    """The stored view of a message whose parts can't be read (Unparseable): its header's
    fields, no bodies and no attachments (its MIME is still there, `body-mime`)."""
    headers = header_pairs(raw)
    first = dict(reversed(headers))
    view: dict[str, Any] = {
        "recipient": recipient, "sender": sender, "from": first.get("From", ""),
        "subject": first.get("Subject", ""), "domain": domain, "recipients": recipient,
        "message-url": message_url, "attachments": [], "content-id-map": {},
        "message-headers": [list(h) for h in headers]}
    for name, value in _each_header(headers):
        view.setdefault(name, value)
    return view


def notified(raw: bytes, *, recipient: str, sender: str, domain: str,
             message_url: str) -> Payload:
    """store(notify="https://…"): the stored view as form fields (JSON ones as JSON text)."""
    view = stored_fields(raw, recipient=recipient, sender=sender, domain=domain,
                         message_url=message_url)
    view.pop("recipients")
    # the POST's content-id-map maps a cid to the attachment's URL alone
    view["content-id-map"] = {cid: a["url"] for cid, a in view["content-id-map"].items()}
    return Payload([(name, value if isinstance(value, str) else json.dumps(value))
                    for name, value in view.items()])


def stored_mime(raw: bytes, *, recipient: str, sender: str) -> dict[str, str]:
    """The message-url's `Accept: message/rfc2822` answer: `body-mime` and the basics. JSON
    holds text: the message as UTF-8, another charset's 8-bit bytes replaced."""
    payload = mime_forwarded(raw, recipient=recipient, sender=sender)
    return {**{name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value
               for name, value in payload.fields}, "recipients": recipient}


def stored_view(raw: bytes, recipients: str, sender: str, domain: str, message_url: str,
                mime: bool) -> dict[str, Any]:
    """The message-url's answer (JSON fields, or `body-mime` with `mime`); run in a
    rendering process (`stored.inbound_json`)."""
    if mime:
        return stored_mime(raw, recipient=recipients, sender=sender)
    return stored_fields(raw, recipient=recipients, sender=sender, domain=domain,
                         message_url=message_url)


def wants_mime(url: str) -> bool:
    """Whether a forward URL gets the raw MIME: its path contains `mime`. Mailgun documents
    "ends in mime", yet posts MIME to django-anymail's documented
    `…/anymail/mailgun/inbound_mime/` (a trailing slash): it looks for `mime` in the URL.
    We look in the path only, as written (a query's `?format=mime` or a host named
    mime.example.com doesn't count); so a path such as `/mimetypes/in` gets the MIME too,
    as it would from Mailgun."""
    try:
        return "mime" in urlsplit(url).path
    except ValueError:
        return False


def signed(payload: Payload, key: str, now: float) -> Payload:
    """The payload with `timestamp`, `token` (50 characters) and `signature` (HMAC-SHA256
    of timestamp + token with the account's webhook signing key) added."""
    timestamp, token = str(int(now)), secrets.token_hex(25)
    signature = sign(key, timestamp, token)
    return Payload([*payload.fields, ("timestamp", timestamp), ("token", token),
                    ("signature", signature)], payload.files)


def post_body(kind: str, raw: bytes, recipient: str, sender: str, url: str, domain: str,
              message_url: str, key: str, now: float) -> tuple[str, bytes]:
    """A route POST's (Content-Type, body), signed: forward() (`kind` "forward") or
    store()'s notify. Run in a rendering process, within a budget (`posts`)."""
    if kind == "forward":
        made = (mime_forwarded if wants_mime(url) else forwarded)(
            raw, recipient=recipient, sender=sender)
    else:
        made = notified(raw, recipient=recipient, sender=sender, domain=domain,
                        message_url=message_url)
    return encode(signed(made, key, now))


def encode(payload: Payload) -> tuple[str, bytes]:
    """(Content-Type, body): multipart/form-data when there are files, else urlencoded
    (bytes values percent-encoded as they are)."""
    if not payload.files:
        return "application/x-www-form-urlencoded", urlencode(payload.fields).encode("ascii")
    data: dict[str, list[str | bytes]] = {}
    for name, value in payload.fields:
        data.setdefault(name, []).append(value)
    files = [(u.field, (u.filename, u.data, u.content_type)) for u in payload.files]
    request = httpx.Request("POST", "http://body.invalid/", data=data,
                            files=files or None)
    return request.headers["Content-Type"], request.read()
