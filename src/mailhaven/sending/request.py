"""Turn the fields of a send request into a validated `SendRequest`, with Mailgun's 400s."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.utils import getaddresses, parsedate_to_datetime

from mailhaven.errors import BadRequest, TooLarge

MAX_RECIPIENTS = 1000
MAX_OPTIONS_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_TRUE = ("yes", "true", "1", "on")

BODY_MISSING = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"


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
        from email.utils import formataddr
        return formataddr((self.name, self.email)) if self.name else self.email


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


def _is_valid(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain and " " not in address and not domain.endswith("."))


def parse_addresses(values: list[str], field_name: str) -> list[Address]:
    parsed = []
    for name, email in getaddresses(values):
        if not email and not name:
            continue
        if not _is_valid(email):
            raise BadRequest(f"{field_name} parameter is not a valid address. "
                             "please check documentation")
        parsed.append(Address(name, email))
    return parsed


def _flag(value: str) -> bool:
    return value.strip().lower() in _TRUE


def _deliverytime(value: str) -> float:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None or when.tzinfo is None:
        raise BadRequest("o:deliverytime is not a valid RFC 2822 date")
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

    options_size = sum(len(k) + len(v) for k, v in fields if k[:2] in ("o:", "h:", "v:", "t:"))
    if options_size > MAX_OPTIONS_BYTES:
        raise BadRequest("Send options (parameters starting with o:, h:, or v:) are limited "
                         "to 16KB total")

    message_file = next((a for k, a in files if k == "message"), None)
    if mime:
        if message_file is None and first("message") is None:
            raise BadRequest("message parameter is missing")
        raw = message_file.data if message_file else (first("message") or "").encode()
        sender_values: list[str] = []
    else:
        raw = None
        sender_values = values.get("from", [])
        if not any(v.strip() for v in sender_values):
            raise BadRequest("from parameter is missing")

    if not any(v.strip() for v in values.get("to", [])):
        raise BadRequest("to parameter is missing")
    to = parse_addresses(values["to"], "to")
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

    request = SendRequest(
        sender=sender, to=to, cc=cc, bcc=bcc,
        subject=first("subject") or "",
        text=first("text"), html=first("html"), amp_html=first("amp-html"), mime=raw,
        attachments=[a for k, a in files if k in ("attachment", "inline")],
        headers=[(k[2:], v) for k, v in fields if k.startswith("h:") and k[2:]],
        variables={k[2:]: v for k, v in fields if k.startswith("v:") and k[2:]},
        recipient_variables=recipient_variables,
        tags=[t for t in values.get("o:tag", []) if t],
        testmode=_flag(first("o:testmode") or ""),
        dkim=None if first("o:dkim") is None else _flag(first("o:dkim") or ""),
        require_tls=_flag(first("o:require-tls") or ""),
        skip_verification=_flag(first("o:skip-verification") or ""),
        deliverytime=_deliverytime(d) if (d := first("o:deliverytime")) else None,
    )
    if request.size > MAX_MESSAGE_BYTES:
        raise TooLarge("Message size exceeds the 25MB limit")
    return request
