"""Turn the fields of a send request into a validated `SendRequest`, with Mailgun's 400s."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC
from email.headerregistry import Address as HeaderAddress
from email.parser import BytesHeaderParser
from email.utils import formataddr, parsedate_to_datetime

from mailhaven.errors import BadRequest, TooLarge

MAX_RECIPIENTS = 1000
MAX_OPTIONS_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_TRUE = ("yes", "true", "1", "on")

BODY_MISSING = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
OPTIONS_TOO_LARGE = ("Send options (parameters starting with o:, h:, or v:) are limited to 16KB "
                     "total")

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII but ':' (RFC 5322 ftext)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_MIME_HEADER = re.compile(rb"[!-9;-~]+:")  # no space before the colon: DKIM signers refuse it
_FROM_HEADER = re.compile(rb"(?i)from:")
MAX_MESSAGE_ID = 250  # the id column holds 255


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    def formatted(self) -> str:
        if not self.name:
            return self.email
        if self.email.isascii():
            return formataddr((self.name, self.email))
        # formataddr refuses a UTF-8 mailbox; its message goes out in UTF-8 (RFC 6532) anyway
        local, _, domain = self.email.rpartition("@")
        return str(HeaderAddress(self.name, local, domain))


@dataclass
class SendRequest:
    sender: Address
    to: list[Address]
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    amp_html: str | None = None
    mime: bytes | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    recipient_variables: dict[str, dict] | None = None
    tags: list[str] = field(default_factory=list)
    testmode: bool = False
    dkim: bool | None = None
    require_tls: bool = False
    skip_verification: bool = False
    deliverytime: float | None = None
    message_id: str | None = None  # the client's own, without <>

    @property
    def recipients(self) -> list[Address]:
        """Every envelope recipient once, in the order given."""
        seen: dict[str, Address] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.email.lower(), address)
        return list(seen.values())

    @property
    def size(self) -> int:
        if self.mime is not None:
            return len(self.mime)
        parts = (self.text or "", self.html or "", self.amp_html or "", self.subject)
        return sum(len(p.encode()) for p in parts) + sum(len(a.data) for a in self.attachments)


def header_text(value: str) -> str:
    """A value that stays one header: line breaks fold to a space, control characters go
    (a CRLF in a subject or `h:` value must not start a header of its own)."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", value))


def _is_valid(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and len(local) <= 64 and len(domain) <= 253
                and _LOCAL_PART.fullmatch(local) and _DOMAIN.fullmatch(domain))


def _split_list(value: str) -> list[str]:
    """Split an address list on the commas outside quotes and angle brackets."""
    items, current = [], []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<>":
            angle = char == "<"
        elif char == "," and not quoted and not angle:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _parse_one(text: str) -> tuple[str, str]:
    """`Name <addr>`, `"Last, First" <addr>`, `<addr>` or a bare `addr`."""
    if not text.endswith(">") or "<" not in text:
        return "", text
    name, _, email = text[:-1].rpartition("<")
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return header_text(name).strip(), email.strip()


def parse_addresses(values: list[str], field_name: str) -> list[Address]:
    parsed = []
    for value in values:
        for item in _split_list(value):
            name, email = _parse_one(item)
            if not _is_valid(email):
                raise BadRequest(f"{field_name} parameter is not a valid address. "
                                 "please check documentation")
            parsed.append(Address(name, email))
    return parsed


def valid_addresses(values: list[str]) -> list[Address]:
    """The well-formed addresses among `values`, skipping the rest (for reporting a
    refused request, where the addresses it did name are still worth a record)."""
    found = []
    for value in values:
        for item in _split_list(value):
            name, email = _parse_one(item)
            if _is_valid(email):
                found.append(Address(name, email))
    return found


def _header(name: str, value: str) -> tuple[str, str]:
    if not name.isascii():
        raise BadRequest(f"Header name must be pure ASCII: {name}")
    if not _HEADER_NAME.fullmatch(name):
        raise BadRequest(f"Header name is not valid: {name}")
    return name, header_text(value)


def _message_id(value: str | None) -> str | None:
    """The client's own Message-ID, without <>; None when it gave none."""
    if value is None or not value.strip("<> \t\r\n"):
        return None
    ident = value.strip().removeprefix("<").removesuffix(">")
    if len(ident) > MAX_MESSAGE_ID or not ident.isprintable() or any(
            c in ident for c in " <>"):
        raise BadRequest("h:Message-ID is not a valid message id")
    return ident


def _check_mime(raw: bytes) -> None:
    """A message we can sign and deliver: well-formed header lines, one of them From."""
    end = re.search(rb"\r?\n\r?\n", raw)
    head = re.split(rb"\r?\n", raw[:end.start()] if end else raw)
    if not _MIME_HEADER.match(head[0]) or not all(
            _MIME_HEADER.match(line) or line[:1] in (b" ", b"\t") for line in head):
        raise BadRequest("message parameter is not a valid MIME message")
    if not any(_FROM_HEADER.match(line) for line in head):
        raise BadRequest("message parameter has no From header")


def _attachment(part: Attachment) -> Attachment:
    """The part with a filename and content type that are safe to put in MIME headers."""
    content_type = part.content_type.partition(";")[0].strip().lower()
    return replace(
        part, filename=header_text(part.filename).strip() or "attachment",
        content_type=content_type if _MIME_TYPE.fullmatch(content_type)
        else "application/octet-stream")


def _flag(value: str) -> bool:
    return value.strip().lower() in _TRUE


def _deliverytime(value: str) -> float:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        raise BadRequest("o:deliverytime is not a valid RFC 2822 date")
    if when.tzinfo is None:  # "-0000": UTC, local offset unknown (RFC 5322 3.3)
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def build_request(fields: list[tuple[str, str]], files: list[tuple[str, Attachment]],
                  *, mime: bool = False) -> SendRequest:
    """Validate the fields of `POST /messages` (or `/messages.mime`) as Mailgun does."""
    values: dict[str, list[str]] = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)

    def first(key: str) -> str | None:
        got = values.get(key)
        return got[0] if got else None

    options_size = sum(len(k.encode()) + len(v.encode())
                       for k, v in fields if k[:2] in ("o:", "h:", "v:", "t:"))
    if options_size > MAX_OPTIONS_BYTES:
        raise BadRequest(OPTIONS_TOO_LARGE)

    message_file = next((a for k, a in files if k == "message"), None)
    if mime:
        if message_file is None and first("message") is None:
            raise BadRequest("message parameter is missing")
        raw = message_file.data if message_file else (first("message") or "").encode()
        if not raw.strip():
            raise BadRequest("message parameter is missing")
        _check_mime(raw)
        sender_values: list[str] = []
    else:
        raw = None
        sender_values = values.get("from", [])
        if not any(v.strip() for v in sender_values):
            raise BadRequest("from parameter is missing")

    if not any(v.strip() for v in values.get("to", [])):
        raise BadRequest("to parameter is missing")
    to = parse_addresses(values["to"], "to")
    if not to:
        raise BadRequest("to parameter is missing")
    cc = parse_addresses(values.get("cc", []), "cc")
    bcc = parse_addresses(values.get("bcc", []), "bcc")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise BadRequest(f"Too many recipients, max is {MAX_RECIPIENTS}")

    if mime:
        sender = Address("", "")
    else:
        senders = parse_addresses(sender_values[:1], "from")
        if not senders:
            raise BadRequest("from parameter is missing")
        sender = senders[0]
        template = first("template")
        if template and not any(first(k) for k in ("text", "html", "amp-html")):
            raise BadRequest(f"template '{template}' not found")
        if not any(first(k) for k in ("text", "html", "amp-html")):
            raise BadRequest(BODY_MISSING)

    recipient_variables = None
    if first("recipient-variables") is not None:
        try:
            recipient_variables = json.loads(first("recipient-variables") or "")
        except ValueError:
            recipient_variables = None
        if not isinstance(recipient_variables, dict) or not all(
            isinstance(v, dict) for v in recipient_variables.values()
        ):
            raise BadRequest("'recipient-variables' parameter is not a valid JSON")
        recipient_variables = {k.strip().lower(): v for k, v in recipient_variables.items()}

    headers = [_header(k[2:], v) for k, v in fields if k.startswith("h:") and k[2:]]
    if raw is not None:
        custom_id = BytesHeaderParser().parsebytes(raw).get("Message-ID")
    else:
        custom_id = next((v for k, v in headers if k.lower() == "message-id"), None)
    request = SendRequest(
        sender=sender, to=to, cc=cc, bcc=bcc,
        subject=header_text(first("subject") or ""),
        text=first("text"), html=first("html"), amp_html=first("amp-html"), mime=raw,
        attachments=[_attachment(a) for k, a in files if k in ("attachment", "inline")],
        headers=headers,
        variables={k[2:]: v for k, v in fields if k.startswith("v:") and k[2:]},
        recipient_variables=recipient_variables,
        tags=[t for t in values.get("o:tag", []) if t],
        testmode=_flag(first("o:testmode") or ""),
        dkim=None if first("o:dkim") is None else _flag(first("o:dkim") or ""),
        require_tls=_flag(first("o:require-tls") or ""),
        skip_verification=_flag(first("o:skip-verification") or ""),
        deliverytime=_deliverytime(d) if (d := first("o:deliverytime")) else None,
        message_id=_message_id(None if custom_id is None else str(custom_id)),
    )
    if request.size > MAX_MESSAGE_BYTES:
        raise TooLarge("Message size exceeds the 25MB limit")
    return request
