"""What the submission server answers when it refuses: the send API's errors as SMTP
replies (RFC 5321 codes, RFC 3463 enhanced codes), and aiosmtpd's own refusals reworded
with enhanced codes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhaven.errors import MailhavenError
from mailhaven.sending.request import MAX_MESSAGE_BYTES

MAX_TEXT = 400  # a reply line is at most 512 octets (RFC 5321 4.5.3.1.5), code included
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Reply:
    text: str  # the reply line, code first
    reason: str  # the metrics' and logs' name for it ("accepted", or why refused)

    @property
    def status(self) -> int:
        return int(self.text[:3])


TOO_LARGE = Reply(f"552 5.3.4 Message size exceeds fixed maximum message size "
                  f"({MAX_MESSAGE_BYTES} bytes)", "size")
# aiosmtpd's replies with no enhanced code, as we answer them
_BUILTIN = {
    "552 Error: message size exceeds fixed maximum message size": TOO_LARGE,
    "552 Error: Too much mail data": TOO_LARGE,
    "530 Must issue a STARTTLS command first":
        Reply("530 5.7.0 Must issue a STARTTLS command first", "tls"),
    "538 5.7.11 Encryption required for requested authentication mechanism":
        Reply("538 5.7.11 Encryption required for requested authentication mechanism",
              "tls"),
    "500 Line too long (see RFC5321 4.5.3.1.6)":
        Reply("500 5.5.2 Line too long: at most 1000 octets (RFC 5321 4.5.3.1.6)", "line"),
    "503 Error: need MAIL command": Reply("503 5.5.1 Error: need MAIL command", ""),
    "503 Error: need RCPT command": Reply("503 5.5.1 Error: need RCPT command", ""),
    "503 Error: nested MAIL command": Reply("503 5.5.1 Error: nested MAIL command", ""),
    "503 Already authenticated": Reply("503 5.5.1 Already authenticated", ""),
}


def builtin(status: str) -> Reply | None:
    """Our wording of one of aiosmtpd's own replies, if it is one we reword."""
    return _BUILTIN.get(status)


def refusal(exc: MailhavenError, message: str | None = None) -> Reply:
    """The reply refusing a submission for one of our errors (`message`: its text, worded
    for SMTP): 400 → 554 5.6.0, 401/403/404 → 550 5.7.1, 413 → 552 5.3.4, 429 and 5xx →
    451 (try later)."""
    text = one_line(exc.message if message is None else message)
    if exc.status == 413:
        return Reply(f"552 5.3.4 {text}", "size")
    if exc.status in (401, 403, 404):
        return Reply(f"550 5.7.1 {text}", "forbidden")
    if exc.status == 429:
        return Reply(f"451 4.7.1 {text}", "rate")
    if exc.status >= 500:
        return Reply(f"451 4.3.0 {text}", "unavailable")
    return Reply(f"554 5.6.0 {text}", "invalid")


def one_line(text: str) -> str:
    """`text` fit for a reply line: one line of printable ASCII (non-ASCII escaped, since a
    client that didn't ask for SMTPUTF8 may refuse it), cut to MAX_TEXT."""
    flat = _UNPRINTABLE.sub(" ", text).encode("ascii", "backslashreplace").decode()
    return flat if len(flat) <= MAX_TEXT else flat[:MAX_TEXT - 3] + "..."
