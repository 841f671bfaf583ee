"""Turn the fields of a send request into a validated `SendRequest`, with Mailgun's 400s."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser

from mailhaven.addresses import (
    MAX_ADDRESS_CHARS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_RECIPIENTS,
    NAME_TOO_LONG,
    NOT_AN_ADDRESS,
    Address,
    check_list_size,
    header_text,
    mailboxes,
    parse_addresses,
)
from mailhaven.clock import parse_rfc2822
from mailhaven.errors import BadRequest, TooLarge
from mailhaven.forms import flag, json_object
from mailhaven.messages.content import RECIPIENT_VAR
from mailhaven.messages.document import Document, StoredAttachment, StoredTemplate
from mailhaven.messages.folding import decode_words, is_structured, unfoldable
from mailhaven.messages.mime import BLANK_LINE, head_size, mime_fields, mime_head
from mailhaven.vault.recognise import holds_address
from mailhaven.vault.service import normalize_address

MAX_OPTIONS_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_DELIVERY_DELAY = 3 * 86400  # Mailgun's documented maximum for o:deliverytime
# Header limits, met before anything is stored (issue 10, finding 1). Mailgun documents none
# but the 16 KB of options; these follow RFC 5322 and what receivers refuse or cut: Gmail
# refuses one header over 32 KB or all of them over 500 KB, Postfix (the usual relayhost)
# drops header text past 100 KiB. Characters are counted before any encoding.
MAX_SUBJECT_CHARS = 998  # one line of RFC 5322, as most providers allow
MAX_HEADER_CHARS = 16 * 1024  # one field's value (To, Cc and References excepted)
MAX_HEADERS_CHARS = 100 * 1024  # all of a copy's fields (Postfix's header_size_limit)
MAX_HEADER_NAME_CHARS = 76  # a name can't be folded: with ": " it fills a 78-character line
MAX_CUSTOM_HEADERS = 100  # h: fields in one request
MAX_MIME_LINE = 998  # octets, RFC 5322 2.1.1: a longer line is refused downstream
MAX_MIME_DEPTH = 50  # multiparts and attached messages within one another
# The email package reads ~0.06 ms per part and ~40 ms per 16 KB Content-Disposition, in
# the send transaction: 25 MB of parts took a minute. Gmail allows 500 attachments.
MAX_MIME_PARTS = 1000
MAX_PART_HEADERS_CHARS = 256 * 1024  # all the parts' header blocks together
_LONG_FIELDS = frozenset({"to", "cc", "bcc", "references"})  # as Gmail counts them

BODY_MISSING = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
HTML_AND_TEMPLATE = "Only one parameters 'html' or 'template' is allowed"  # (sic), Mailgun's
TEMPLATE_VARIABLES_INVALID = "'t:variables' parameter is not a valid JSON"
VERSION_WITHOUT_TEMPLATE = "t:version can't be used without the template parameter"
TAG_HOLDS_ADDRESS = ("o:tag can't hold an email address: tags are kept in clear in events "
                     "and stats; put personal data in v: variables, which are sealed")
DELIVERYTIME_TOO_FAR = "o:deliverytime can't be more than 3 days in the future"
SENDING_IP_UNSUPPORTED = ("{} is not supported yet: Mailhaven has no IP pools, and sends from "
                          "its own addresses; leave the option out")
# The options and headers that would choose the sending IP (Mailgun's dedicated IPs): refused
# rather than ignored, so a sender counting on an IP's reputation knows it isn't used.
_SENDING_IP_FIELDS = ("o:sending-ip", "o:sending-ip-pool", "h:x-mailgun-sending-ip",
                      "h:x-mailgun-sending-ip-pool")
OPTIONS_TOO_LARGE = ("Send options (parameters starting with o:, h:, or v:) are limited to 16KB "
                     "total")
SUBJECT_TOO_LONG = f"subject is too long, max is {MAX_SUBJECT_CHARS} characters"
HEADER_TOO_LONG = "{} header value is too long, max is " f"{MAX_HEADER_CHARS} characters"
HEADERS_TOO_LARGE = f"Message headers are too large, max is {MAX_HEADERS_CHARS} characters in all"
HEADER_NAME_TOO_LONG = f"Header name is too long, max is {MAX_HEADER_NAME_CHARS} characters"
TOO_MANY_HEADERS = f"Too many h: headers, max is {MAX_CUSTOM_HEADERS}"
UNFOLDABLE = ("{} header has a word too long to fold: a structured field's words go as they "
              f"are, on lines of at most {MAX_MIME_LINE} characters with its name")
MIME_LINE_TOO_LONG = ("message parameter is not a valid MIME message: a header line is longer "
                      f"than {MAX_MIME_LINE} characters")
MIME_TOO_DEEP = ("message parameter is not a valid MIME message: parts are nested more than "
                 f"{MAX_MIME_DEPTH} deep")
TOO_MANY_PARTS = ("message parameter is not a valid MIME message: more than "
                  f"{MAX_MIME_PARTS} parts")
PART_HEADERS_TOO_LARGE = ("message parameter is not a valid MIME message: its parts' headers "
                          f"are over {MAX_PART_HEADERS_CHARS} characters in all")
NOT_TEXT = "'recipient-variables' parameter holds text that is not valid Unicode"
# Parsed JSON takes ~10 times its text: 4 MiB is 4 KB of variables for each of 1,000
# recipients, and bounds the work and memory of one request
MAX_RECIPIENT_VARIABLES_CHARS = 4 * 1024 * 1024
RECIPIENT_VARIABLES_TOO_LARGE = "'recipient-variables' parameter is too large, max is 4MB"
TOO_MANY_RECIPIENT_VARIABLES = (f"'recipient-variables' parameter names more than "
                                f"{MAX_RECIPIENTS} recipients")
TEMPLATE_VARIABLES_NOT_TEXT = "'t:variables' parameter holds text that is not valid Unicode"

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII but ':' (RFC 5322 ftext)
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_MIME_HEADER = re.compile(rb"[!-9;-~]+:")  # no space before the colon: DKIM signers refuse it
_FROM_HEADER = re.compile(rb"(?i)from:")
_DELIMITER = re.compile(rb"(?m)^(--[^\n]*)")  # a line that may be a boundary delimiter
_BOUNDARY = re.compile(r'(?i)\bboundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))')
MAX_MESSAGE_ID = 250  # the id column holds 255


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False




@dataclass(frozen=True)
class TemplateChoice:
    """The template a send names: `template`, `t:version`, `t:text`, `t:variables`."""

    name: str
    version: str | None = None  # None: the active version
    text: bool = False
    variables: dict = field(default_factory=dict)


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
    tracking: dict = field(default_factory=dict)  # o:tracking*, as asked (policy decides)
    marketing: bool = True  # o:category=transactional: a service message, not unsubscribable
    method: str = "http"  # the door it came in by (events' "method"): "http" or "smtp"
    template: TemplateChoice | None = None
    stored_template: StoredTemplate | None = None  # the template found for it, when accepted

    @property
    def recipients(self) -> list[Address]:
        """Every envelope recipient once, in the order given."""
        seen: dict[str, Address] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(normalize_address(address.email), address)
        return list(seen.values())

    def document(self, *, message_id: str, created_at: float) -> Document:
        """What is stored of the request (sealed), to render each recipient's copy from."""
        return Document(
            message_id=message_id, created_at=created_at, sender=self.sender.formatted(),
            to=[a.formatted() for a in self.to], cc=[a.formatted() for a in self.cc],
            subject=self.subject, text=self.text, html=self.html, amp_html=self.amp_html,
            headers=self.headers, variables=self.variables,
            batch=self.recipient_variables is not None,
            attachments=[StoredAttachment(a.filename, a.content_type, a.inline,
                                          base64.b64encode(a.data).decode())
                         for a in self.attachments],
            mime=base64.b64encode(self.mime).decode() if self.mime is not None else None,
            deliverytime=self.deliverytime, tracking=self.tracking, marketing=self.marketing,
            method=self.method, template=self.stored_template)

    @property
    def size(self) -> int:
        template = len(self.stored_template.source.encode()) if self.stored_template else 0
        if self.mime is not None:
            return len(self.mime) + template
        parts = (self.text or "", self.html or "", self.amp_html or "", self.subject)
        return (sum(len(p.encode()) for p in parts) + sum(len(a.data) for a in self.attachments)
                + template)




























def _header(name: str, value: str) -> tuple[str, str]:
    if not name.isascii():
        raise BadRequest(f"Header name must be pure ASCII: {name}")
    if len(name) > MAX_HEADER_NAME_CHARS:
        raise BadRequest(HEADER_NAME_TOO_LONG)
    if not _HEADER_NAME.fullmatch(name):
        raise BadRequest(f"Header name is not valid: {name}")
    value = header_text(value)
    if is_structured(name) and unfoldable(name, value):
        raise BadRequest(UNFOLDABLE.format(f"h:{name}"))
    return name, value


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
    """A message we can sign and deliver: well-formed header lines, one of them From, all
    within the header limits (they go out as they are)."""
    if head_size(raw) > MAX_HEADERS_CHARS:
        raise BadRequest(HEADERS_TOO_LARGE)
    head = mime_head(raw)
    if not _MIME_HEADER.match(head[0]) or not all(
            _MIME_HEADER.match(line) or line[:1] in (b" ", b"\t") for line in head):
        raise BadRequest("message parameter is not a valid MIME message")
    if any(len(line) > MAX_MIME_LINE for line in head):
        raise BadRequest(MIME_LINE_TOO_LONG)
    if not any(_FROM_HEADER.match(line) for line in head):
        raise BadRequest("message parameter has no From header")
    for name, value in mime_fields(head):
        if name == "subject" and len(decode_words(value).strip()) > MAX_SUBJECT_CHARS:
            raise BadRequest(SUBJECT_TOO_LONG)
        if name not in _LONG_FIELDS and len(value) > MAX_HEADER_CHARS:
            raise BadRequest(HEADER_TOO_LONG.format(name.title()))
    _check_parts(raw, head)


def _check_parts(raw: bytes, head: list[bytes]) -> None:
    """Every part's header block (and an attached message's) within the same limits as the
    message's own, and parts nested no deeper than MAX_MIME_DEPTH: the email package reads
    a part's Content-Type and Content-Disposition in time ~4x per doubling (400 KB of
    filename took 5 s) as the message is accepted, and recurses once per level. One pass:
    a header line is read once, other lines only where they start with `--`."""
    boundaries: dict[bytes, int] = {}  # each multipart's delimiter, and its parts' depth
    budget = _Budget()
    at = head_size(raw)
    if _declare(mime_fields(head), boundaries, 0):  # a message/rfc822 message
        at = _check_block(raw, _body_start(raw, at), boundaries, 1, budget)
    if not boundaries:
        return
    for delimiter in _DELIMITER.finditer(raw, at):
        depth = boundaries.get(delimiter.group(1).rstrip(b" \t\r"))
        if depth is not None:
            _check_block(raw, delimiter.end() + 1, boundaries, depth, budget)


@dataclass
class _Budget:
    """What a message's parts have used of MAX_MIME_PARTS and MAX_PART_HEADERS_CHARS."""

    parts: int = 0
    chars: int = 0

    def spend(self, chars: int) -> None:
        self.parts, self.chars = self.parts + 1, self.chars + chars
        if self.parts > MAX_MIME_PARTS:
            raise BadRequest(TOO_MANY_PARTS)
        if self.chars > MAX_PART_HEADERS_CHARS:
            raise BadRequest(PART_HEADERS_TOO_LARGE)


def _body_start(raw: bytes, head_end: int) -> int:
    """Where the body begins, after the blank line that ends a header at `head_end`."""
    end = BLANK_LINE.match(raw, head_end)
    return end.end() if end else len(raw)


def _check_block(raw: bytes, at: int, boundaries: dict[bytes, int], depth: int,
                 budget: _Budget) -> int:
    """Check the header block of a part at `depth` starting at `at`, note the boundary it
    declares, and check the header of the message it holds, if it holds one (a loop:
    nesting is checked, not recursed); where the last header checked ends."""
    while True:
        if depth > MAX_MIME_DEPTH:
            raise BadRequest(MIME_TOO_DEEP)
        fields, end = _read_block(raw, at)
        budget.spend(end - at)
        for name, value in fields:
            if name not in _LONG_FIELDS and len(value) > MAX_HEADER_CHARS:
                raise BadRequest(HEADER_TOO_LONG.format(name.title()))
        if not (_declare(fields, boundaries, depth) and end > at):
            return end
        at, depth = _body_start(raw, end - 1), depth + 1


def _read_block(raw: bytes, at: int) -> tuple[list[tuple[str, str]], int]:
    """The fields of the header block at `at`, as the email package reads one (up to the
    first line that is neither a field nor a continuation), and where it ends; a line or a
    block past the limits is a 400."""
    lines: list[bytes] = []
    start = at
    while at < len(raw):
        end = raw.find(b"\n", at)
        end = len(raw) if end < 0 else end
        line = raw[at:end].removesuffix(b"\r")
        if not (_MIME_HEADER.match(line) or (lines and line[:1] in (b" ", b"\t"))):
            break
        if len(line) > MAX_MIME_LINE:
            raise BadRequest(MIME_LINE_TOO_LONG)
        if end + 1 - start > MAX_HEADERS_CHARS:
            raise BadRequest(HEADERS_TOO_LARGE)
        lines.append(line)
        at = end + 1
    return list(mime_fields(lines)), at


def _declare(fields: Iterable[tuple[str, str]], boundaries: dict[bytes, int],
             depth: int) -> bool:
    """Note the boundary a multipart Content-Type declares (its parts one level deeper);
    whether the part holds a message."""
    content_type = next((value for name, value in fields if name == "content-type"), "")
    kind = content_type.partition(";")[0].strip().lower()
    if kind.startswith("multipart/") and (found := _BOUNDARY.search(content_type)):
        delimiter = b"--" + (found.group(1) or found.group(2)).encode("utf-8", "replace")
        boundaries.setdefault(delimiter, depth + 1)
    return kind in ("message/rfc822", "message/global")








def _attachment(part: Attachment) -> Attachment:
    """The part with a filename and content type that are safe to put in MIME headers."""
    content_type = part.content_type.partition(";")[0].strip().lower()
    return replace(
        part, filename=header_text(part.filename).strip() or "attachment",
        content_type=content_type if _MIME_TYPE.fullmatch(content_type)
        else "application/octet-stream")


def _deliverytime(value: str, now: float | None) -> float:
    """The epoch of an RFC 2822 date; past dates send now, but no more than Mailgun's
    3 days ahead when `now` is known."""
    when = parse_rfc2822(value)
    if when is None:
        raise BadRequest("o:deliverytime is not a valid RFC 2822 date")
    if now is not None and when > now + MAX_DELIVERY_DELAY:
        raise BadRequest(DELIVERYTIME_TOO_FAR)
    return when


# -- build_request, in the order Mailgun checks: the first failing check names the 400 --
Values = dict[str, list[str]]


def _grouped(fields: list[tuple[str, str]]) -> Values:
    values: Values = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)
    return values


def _first(values: Values, key: str) -> str | None:
    got = values.get(key)
    return got[0] if got else None


def _check_options_size(fields: list[tuple[str, str]]) -> None:
    size = sum(len(k.encode()) + len(v.encode())
               for k, v in fields if k[:2] in ("o:", "h:", "v:", "t:"))
    if size > MAX_OPTIONS_BYTES:
        raise BadRequest(OPTIONS_TOO_LARGE)


def _mime_message(values: Values, files: list[tuple[str, Attachment]]) -> bytes:
    """The `message` of `/messages.mime`, as a file part or a plain field."""
    message_file = next((a for k, a in files if k == "message"), None)
    if message_file is None and _first(values, "message") is None:
        raise BadRequest("message parameter is missing")
    raw = message_file.data if message_file else (_first(values, "message") or "").encode()
    if not raw.strip():
        raise BadRequest("message parameter is missing")
    _check_mime(raw)
    return raw


def _recipients(values: Values) -> tuple[list[Address], list[Address], list[Address]]:
    """to, cc and bcc: at least one `to`, at most 1000 in all (duplicates count)."""
    if not any(v.strip() for v in values.get("to", [])):
        raise BadRequest("to parameter is missing")
    check_list_size([v for key in ("to", "cc", "bcc") for v in values.get(key, [])])
    to = parse_addresses(values["to"], "to")
    if not to:
        raise BadRequest("to parameter is missing")
    cc = parse_addresses(values.get("cc", []), "cc", MAX_RECIPIENTS - len(to))
    bcc = parse_addresses(values.get("bcc", []), "bcc", MAX_RECIPIENTS - len(to) - len(cc))
    return to, cc, bcc


def _sender(values: Values) -> Address:
    """The first address of the first `from`; any other there must be well formed too."""
    value = _first(values, "from") or ""
    if len(value) > MAX_ADDRESS_CHARS:  # no sender is that long; don't loop over it
        raise BadRequest(NOT_AN_ADDRESS.format("from"))
    named = list(mailboxes([value]))
    if not named:
        raise BadRequest("from parameter is missing")
    if not all(valid for _, valid in named):
        raise BadRequest(NOT_AN_ADDRESS.format("from"))
    if any(len(address.name) > MAX_DISPLAY_NAME_CHARS for address, _ in named):
        raise BadRequest(NAME_TOO_LONG.format("from"))
    return named[0][0]


def _check_body(values: Values) -> None:
    """A form send needs a body: text, html, amp-html or a stored template (not html and a
    template both: the template is the HTML)."""
    if _first(values, "template") and _first(values, "html"):
        raise BadRequest(HTML_AND_TEMPLATE)
    if not any(_first(values, k) for k in ("text", "html", "amp-html", "template")):
        raise BadRequest(BODY_MISSING)


def _template(values: Values) -> TemplateChoice | None:
    """The stored template a send names, and how: found (and its version) when the
    message is accepted, rendered for each recipient when it is delivered."""
    name = (_first(values, "template") or "").strip()
    version = (_first(values, "t:version") or "").strip() or None
    if not name:
        if version:
            raise BadRequest(VERSION_WITHOUT_TEMPLATE)
        return None
    given = _first(values, "t:variables")
    variables = json_object(given) if given and given.strip() else {}
    if variables is None:
        raise BadRequest(TEMPLATE_VARIABLES_INVALID)
    _text_only(variables, TEMPLATE_VARIABLES_NOT_TEXT)
    return TemplateChoice(name, version, flag(_first(values, "t:text")), variables)


def _text_only(parsed: dict, refusal: str) -> None:
    """JSON may hold what no text can ("\\ud800"): no copy it went into could be written."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest(refusal) from None


def _recipient_variables(value: str | None) -> dict[str, dict] | None:
    """Batch sending's per-recipient variables, keyed by address (`normalize_address`)."""
    if value is None:
        return None
    if len(value) > MAX_RECIPIENT_VARIABLES_CHARS:
        raise TooLarge(RECIPIENT_VARIABLES_TOO_LARGE)
    parsed = json_object(value)
    if parsed is None or not all(isinstance(v, dict) for v in parsed.values()):
        raise BadRequest("'recipient-variables' parameter is not a valid JSON")
    if len(parsed) > MAX_RECIPIENTS:  # a batch has at most that many: the rest is waste
        raise BadRequest(TOO_MANY_RECIPIENT_VARIABLES)
    _text_only(parsed, NOT_TEXT)
    return {normalize_address(k): v for k, v in parsed.items()}


def _custom_id(raw: bytes | None, headers: list[tuple[str, str]]) -> str | None:
    """The client's Message-ID: the MIME message's own, or an `h:Message-ID`."""
    if raw is not None:
        custom = BytesHeaderParser().parsebytes(raw).get("Message-ID")
    else:
        custom = next((v for k, v in headers if k.lower() == "message-id"), None)
    return _message_id(None if custom is None else str(custom))


def _with_options(request: SendRequest, values: Values, now: float | None) -> SendRequest:
    """The `o:` options Mailhaven acts on."""
    chosen_ip = next((key for key, given in values.items()
                      if key.lower() in _SENDING_IP_FIELDS and any(v.strip() for v in given)),
                     None)
    if chosen_ip is not None:
        raise BadRequest(SENDING_IP_UNSUPPORTED.format(chosen_ip))
    dkim = _first(values, "o:dkim")
    deliverytime = _first(values, "o:deliverytime")
    return replace(
        request,
        tags=_tags(values.get("o:tag", [])),
        testmode=flag(_first(values, "o:testmode")),
        dkim=None if dkim is None else flag(dkim),
        require_tls=flag(_first(values, "o:require-tls")),
        skip_verification=flag(_first(values, "o:skip-verification")),
        deliverytime=_deliverytime(deliverytime, now) if deliverytime else None,
        tracking=_tracking(values),
        marketing=_marketing(_first(values, "o:category")))


def _tags(given: list[str]) -> list[str]:
    """`o:tag` values, which stats and events keep in clear (and the vault can't erase):
    one that carries an address is refused, not stored."""
    tags = [t for t in given if t]
    if any(holds_address(t) for t in tags):
        raise BadRequest(TAG_HOLDS_ADDRESS)
    return tags


def _marketing(category: str | None) -> bool:
    """`o:category` (a Mailhaven extension): `transactional` for service messages (receipts,
    password resets), which unsubscribes and objections don't stop; anything else is
    marketing, as every Mailgun message is."""
    if category is None or category.strip().lower() in ("", "marketing"):
        return True
    if category.strip().lower() == "transactional":
        return False
    raise BadRequest("o:category must be marketing or transactional")


def _tracking(values: Values) -> dict:
    """`o:tracking`, `o:tracking-opens`, `o:tracking-clicks` (yes/no/htmlonly) as given;
    whether anything is tracked is `tracking.policy.may_track`'s decision."""
    def given(name: str) -> bool | None:
        value = _first(values, name)
        return None if value is None or value == "" else flag(value)

    clicks = _first(values, "o:tracking-clicks")
    if clicks is not None and clicks.strip().lower() != "htmlonly":
        clicks = "yes" if flag(clicks) else "no" if clicks else None
    return {name: value for name, value in (
        ("all", given("o:tracking")), ("opens", given("o:tracking-opens")),
        ("clicks", clicks.strip().lower() if clicks else None)) if value is not None}


def build_request(fields: list[tuple[str, str]], files: list[tuple[str, Attachment]],
                  *, mime: bool = False, now: float | None = None) -> SendRequest:
    """Validate the fields of `POST /messages` (or `/messages.mime`) as Mailgun does.
    `now` bounds o:deliverytime to 3 days ahead; None leaves it unbounded."""
    values = _grouped(fields)
    _check_options_size(fields)
    raw = _mime_message(values, files) if mime else None
    given_from = any(v.strip() for v in values.get("from", []))
    # With a template, the From may be the template's (or the domain's postmaster).
    if raw is None and not given_from and not (_first(values, "template") or "").strip():
        raise BadRequest("from parameter is missing")
    to, cc, bcc = _recipients(values)
    sender = Address("", "")
    if raw is None:
        sender = _sender(values) if given_from else sender
        _check_body(values)
    template = _template(values)
    recipient_variables = _recipient_variables(_first(values, "recipient-variables"))
    custom = [(k[2:], v) for k, v in fields if k.startswith("h:") and k[2:]]
    if len(custom) > MAX_CUSTOM_HEADERS:
        raise BadRequest(TOO_MANY_HEADERS)
    headers = [_header(name, value) for name, value in custom]
    request = _with_options(SendRequest(
        sender=sender, to=to, cc=cc, bcc=bcc,
        subject=header_text(_first(values, "subject") or ""),
        text=_first(values, "text"), html=_first(values, "html"),
        amp_html=_first(values, "amp-html"), mime=raw,
        attachments=[_attachment(a) for k, a in files if k in ("attachment", "inline")],
        headers=headers,
        variables={k[2:]: v for k, v in fields if k.startswith("v:") and k[2:]},
        recipient_variables=recipient_variables, template=template,
    ), values, now)
    request.message_id = _custom_id(raw, headers)
    if request.size > MAX_MESSAGE_BYTES:
        raise TooLarge("Message size exceeds the 25MB limit")
    _check_headers(request)
    return request


# -- header limits, for the copy whose header comes out longest -------------------------
def _longest_values(batch: dict[str, dict] | None) -> dict[str, tuple[int, int]]:
    """For each recipient variable, the longest any recipient's value is: as text, and as a
    JSON string (X-Mailgun-Variables). One pass over the variables, whatever the templates."""
    longest: dict[str, tuple[int, int]] = {}
    for variables in (batch or {}).values():
        for name, value in variables.items():
            text = str(value)
            plain, escaped = longest.get(name, (0, 0))
            longest[name] = (max(plain, len(text)), max(escaped, len(json.dumps(text)) - 2))
    return longest


def _check_headers(request: SendRequest) -> None:
    """Subject, each `h:` value and all of a copy's fields within the header limits, with
    `%recipient.x%` counted at the longest value any recipient has for it (a 13-character
    placeholder may stand for 16 KB): a bound found in one pass, not 1000 renderings."""
    longest = _longest_values(request.recipient_variables)

    def length(text: str, escaped: bool = False) -> int:
        size = len(json.dumps(text)) - 2 if escaped else len(text)
        if request.recipient_variables is None or "%recipient" not in text:
            return size
        return size + sum(longest.get(name, (0, 0))[escaped] - len(name) - 12
                          for name in RECIPIENT_VAR.findall(text))

    subjects = [] if request.mime is not None else [length(request.subject)]
    subjects += [length(value) for name, value in request.headers if name.lower() == "subject"]
    if any(size > MAX_SUBJECT_CHARS for size in subjects):
        raise BadRequest(SUBJECT_TOO_LONG)
    total = sum(len(a.formatted()) + 2 for a in (request.sender, *request.cc))
    if request.mime is not None:
        total += head_size(request.mime)  # its own To and Subject among them
    elif request.recipient_variables is not None:  # a batch copy names its recipient alone
        total += max(len(a.formatted()) for a in request.to) + subjects[0]
    else:
        total += sum(len(a.formatted()) + 2 for a in request.to) + subjects[0]
    for name, value in request.headers:
        size = length(value)
        if size > MAX_HEADER_CHARS and name.lower() not in _LONG_FIELDS:
            raise BadRequest(HEADER_TOO_LONG.format(f"h:{name}"))
        total += len(name) + 2 + size
    total += sum(len(json.dumps(k)) + 4 + length(v, escaped=True)
                 for k, v in request.variables.items())
    if total > MAX_HEADERS_CHARS:
        raise BadRequest(HEADERS_TOO_LARGE)
