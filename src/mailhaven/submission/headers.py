"""A submitted message's `X-Mailgun-*` headers as the send API's fields, taken out of it.

Mailgun's SMTP service reads its sending options from headers named after the HTTP
options (documentation.mailgun.com, "Passing Sending Options" and "Send via SMTP"); each
becomes the field of the same meaning, so `sending.request.build_request` validates it
exactly as it validates `POST /messages.mime`. The headers leave the delivered copy — they
are instructions to us, and `X-Mailgun-Recipient-Variables` holds every recipient's data —
except `X-Mailgun-Variables`, which the copy carries as the API's `v:` fields would.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mailhaven.errors import BadRequest
from mailhaven.forms import json_object
from mailhaven.messages.folding import decode_words
from mailhaven.messages.mime import head_size, mime_fields

# Header, as Mailgun's documentation writes it -> the send API's field of the same meaning.
HEADERS = {
    "X-Mailgun-Tag": "o:tag",
    "X-Mailgun-Dkim": "o:dkim",
    "X-Mailgun-Drop-Message": "o:testmode",
    "X-Mailgun-Track": "o:tracking",
    "X-Mailgun-Track-Clicks": "o:tracking-clicks",
    "X-Mailgun-Track-Opens": "o:tracking-opens",
    "X-Mailgun-Deliver-By": "o:deliverytime",
    "X-Mailgun-Deliver-Within": "o:deliver-within",
    "X-Mailgun-Delivery-Time-Optimize-Period": "o:deliverytime-optimize-period",
    "X-Mailgun-Time-Zone-Localize": "o:time-zone-localize",
    "X-Mailgun-Require-TLS": "o:require-tls",
    "X-Mailgun-Skip-Verification": "o:skip-verification",
    "X-Mailgun-Sending-Ip": "o:sending-ip",
    "X-Mailgun-Sending-Ip-Pool": "o:sending-ip-pool",
    "X-Mailgun-Secondary-DKIM": "o:secondary-dkim",
    "X-Mailgun-Secondary-DKIM-Public": "o:secondary-dkim-public",
    "X-Mailgun-Track-Pixel-Location-Top": "o:tracking-pixel-location-top",
    "X-Mailgun-Archive-To": "o:archive-to",
    "X-Mailgun-Suppress-Headers": "o:suppress-headers",
    "X-Mailgun-Recipient-Variables": "recipient-variables",
    "X-Mailgun-Template-Name": "template",
    "X-Mailgun-Template-Version": "t:version",
    "X-Mailgun-Template-Variables": "t:variables",
}
FIELDS = {header.lower(): name for header, name in HEADERS.items()}
_HEADER_OF = {name: header for header, name in HEADERS.items()}
VARIABLES = "x-mailgun-variables"  # each a JSON object; several are merged into v: fields
# Other headers the copy loses: any other X-Mailgun-* (ours to set: a customer's would be
# read as our verdict, e.g. X-Mailgun-Sflag), and Bcc, which would show every blind copy's
# address to every recipient (Postfix's cleanup drops it the same way).
_DROPPED = re.compile(rb"(?i)\s*(x-mailgun-[!-9;-~]*|bcc)\s*:")
_LINE_END = re.compile(rb"\r?\n")
NOT_JSON = "X-Mailgun-Variables header is not a valid JSON object"


@dataclass(frozen=True)
class Submitted:
    """A submitted message split into the send API's fields and the message to store."""

    fields: list[tuple[str, str]]
    message: bytes

    def worded(self, text: str) -> str:
        """An API message about these fields, naming the headers they were given as
        ("o:deliverytime is not…" reads "X-Mailgun-Deliver-By is not…")."""
        given = sorted({name for name, _ in self.fields if name in _HEADER_OF},
                       key=len, reverse=True)  # o:tracking-opens before o:tracking
        if not given:
            return text
        pattern = re.compile("|".join(re.escape(n) for n in given) + r"(?![\w-])")
        return pattern.sub(lambda m: _HEADER_OF[m.group(0)], text)


def read_submission(raw: bytes) -> Submitted:
    """The options a message's own `X-Mailgun-*` header fields give, and the message
    without them (byte for byte as sent when it has none)."""
    end = head_size(raw)
    head = raw[:end]
    if _LINE_END.match(raw) or not _DROPPED.search(head):  # no header, or none of ours
        return Submitted([], raw)
    kept: list[bytes] = []
    fields: list[tuple[str, str]] = []
    variables: dict[str, str] = {}
    for lines in _header_fields(head):
        if not _DROPPED.match(lines[0]):
            kept += lines
            continue
        [(name, value)] = mime_fields(lines)
        value = decode_words(value)
        if name == VARIABLES:
            variables.update(_variables(value))
        elif name in FIELDS:
            fields.append((FIELDS[name], value))
    fields += [(f"v:{name}", value) for name, value in variables.items()]
    if kept:
        return Submitted(fields, b"\r\n".join(kept) + raw[end:])
    # no field left: the header section is empty, and the line that ended it goes with it
    rest = _LINE_END.match(raw, end)
    return Submitted(fields, raw[rest.end():] if rest else b"")


def _header_fields(head: bytes) -> list[list[bytes]]:
    """The header's fields, each as its lines (the first, then its folded continuations)."""
    found: list[list[bytes]] = []
    for line in _LINE_END.split(head):
        if found and line[:1] in (b" ", b"\t"):
            found[-1].append(line)
        else:
            found.append([line])
    return found


def _variables(value: str) -> dict[str, str]:
    """One X-Mailgun-Variables header's variables, as `v:` fields hold them: text stays
    text, anything else is its JSON."""
    parsed = json_object(value)
    if parsed is None:
        raise BadRequest(NOT_JSON)
    return {str(name): item if isinstance(item, str) else json.dumps(item)
            for name, item in parsed.items()}

