"""SMTP replies, classified once: everything past this boundary sees Temporary or Permanent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhaven.failure_reasons import FailureReason

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
_WAIT = re.compile(
    r"(?:try|retry)(?:\s+again)?\s+(?:in|after)\s+(\d+)\s*"
    r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    re.IGNORECASE,
)
_UNIT = {"s": 1, "m": 60, "h": 3600}
_SLOW_DOWN = re.compile(
    r"rate.?limit|too many (?:connections|sessions|concurrent|messages)|try (?:again )?later"
    r"|throttl|slow(?:ing)? down",
    re.IGNORECASE,
)
_GREYLISTED = re.compile(r"gr[ae]y-?list", re.IGNORECASE)
# What receiving servers say when they refuse a sender, not a mailbox, for now.
_BLOCKED = re.compile(
    r"\b(?:block(?:ed|list(?:ed)?)?|blacklist(?:ed)?|denylist(?:ed)?|reputation|spamhaus|"
    r"rate[- ]limit(?:ed)?|throttl(?:ed|ing))\b", re.IGNORECASE)


@dataclass(frozen=True)
class SmtpReply:
    code: int
    enhanced: str
    text: str

    @classmethod
    def parse(cls, code: int, message: str) -> SmtpReply:
        lines = [line.strip() for line in message.splitlines()] or [""]
        match = _ENHANCED.match(lines[0])
        enhanced = match.group(1) if match else ""
        if enhanced:
            # Each line of a multiline reply repeats the code ("550-5.1.1 …"): keep it once.
            lines = [_without_code(line, enhanced) for line in lines]
        return cls(code, enhanced, " ".join(" ".join(lines).split()))

    def wait_hint(self) -> float | None:
        """Seconds the server asked us to wait ("try again in 5 minutes"), if it said."""
        match = _WAIT.search(self.text)
        if not match:
            return None
        return float(match.group(1)) * _UNIT[match.group(2)[0].lower()]

    def asks_to_slow_down(self) -> bool:
        """421 (the server is closing on us), or a 4xx saying we send too much or too fast;
        greylisting ("try again later" to a stranger) is about the sender, not the pace."""
        if self.code == 421:
            return True
        return (400 <= self.code < 500 and _SLOW_DOWN.search(self.text) is not None
                and "greylist" not in self.text.lower())

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}".replace("  ", " ")


def _without_code(line: str, enhanced: str) -> str:
    match = _ENHANCED.match(line)
    return line[match.end():] if match and match.group(1) == enhanced else line


class DeliveryFailure(Exception):
    """A delivery attempt that did not end in a 2xx for the message."""

    permanent = False

    def __init__(self, reply: SmtpReply, mx_host: str = "",
                 reason: FailureReason = FailureReason.GENERIC,
                 *, slow_down: bool = False) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.mx_host = mx_host
        self.reason = reason
        self.slow_down = slow_down  # the server asked us to send to it less (see shaping)
        self.tls = False  # whether the SMTP session it happened in was encrypted
        self.certificate_verified = False


class TemporaryFailure(DeliveryFailure):
    permanent = False


class PermanentFailure(DeliveryFailure):
    permanent = True


def failure_for(reply: SmtpReply, mx_host: str, *,
                about_recipient: bool = True) -> DeliveryFailure:
    """The failure a non-2xx reply stands for: 5xx is permanent, anything else is retried.
    A permanent one is a `bounce` (its address may be listed) only when the reply is about
    the recipient; one about the session, the sender or the message is `generic`."""
    if 500 <= reply.code < 600:
        return PermanentFailure(reply, mx_host,
                                reason=FailureReason.BOUNCE if about_recipient
                                else FailureReason.GENERIC)
    return TemporaryFailure(reply, mx_host, reason=deferral_reason(reply),
                            slow_down=reply.asks_to_slow_down())


def about_recipient(command: str, reply: SmtpReply) -> bool:
    """Whether a refusal says something about the recipient's address: any answer to RCPT,
    or an answer to the message with an addressing or mailbox status (RFC 3463 X.1.x, X.2.x
    but X.2.3, the message's length: some servers check recipients only then). A refusal of
    the message itself ("500 Line too long", "554 5.6.0 content rejected", a message of our
    own making) says nothing about the mailbox and must not have it suppressed."""
    if command == "rcpt":
        return True
    if command != "data":
        return False
    status = reply.enhanced.split(".")
    return len(status) == 3 and (status[1] == "1" or (status[1] == "2" and status[2] != "3"))


def deferral_reason(reply: SmtpReply) -> FailureReason:
    """Mailgun's `reason` for a 4xx: `greylisted`; `espblock` when the receiving server holds
    back the sender (security or policy status 4.7.x, RFC 3463, or a reply that says blocked,
    reputation, rate limited); otherwise `generic` (a full mailbox, a busy server)."""
    if _GREYLISTED.search(reply.text):
        return FailureReason.GREYLISTED
    if reply.enhanced.startswith("4.7.") or _BLOCKED.search(reply.text):
        return FailureReason.ESPBLOCK
    return FailureReason.GENERIC


def local_failure(code: int, enhanced: str, text: str, *, permanent: bool,
                  mx_host: str = "",
                  reason: FailureReason = FailureReason.GENERIC) -> DeliveryFailure:
    """A failure we decide ourselves (DNS, TLS, connection), in the same shape as a reply."""
    cls = PermanentFailure if permanent else TemporaryFailure
    return cls(SmtpReply(code, enhanced, text), mx_host, reason)
