"""Read a delivery status notification or an abuse report out of a received message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from mailhaven.delivery.replies import SmtpReply

# Each multipart or message part can nest the parts below it one level deeper, and the
# parser recurses (and slows down) with every level: a report declaring more of them than
# this is not read. Real reports have fewer than ten (the report, its status, the
# returned message and that message's own parts).
MAX_COMPOSITE_PARTS = 32
# The blanks Python's str.strip() takes away, as the email package does from a value: the
# ASCII file/group/record/unit separators too, which a bytes pattern's \s does not match.
_COMPOSITE = re.compile(rb"content-type:[\s\x1c-\x1f]*(?:multipart|message)/", re.IGNORECASE)


class TooDeep(ValueError):
    """A report nesting more MIME parts than MAX_COMPOSITE_PARTS."""


@dataclass(frozen=True)
class Bounce:
    """What a DSN says about the (first failed, else first) recipient it reports on."""

    failed: bool
    reply: SmtpReply


@dataclass(frozen=True)
class Complaint:
    feedback_type: str
    original_return_path: str | None  # our VERP address, from the reported message


def read_report(data: bytes) -> Bounce | Complaint | None:
    """The report in `data`, or None when it is neither a DSN nor an ARF report; TooDeep
    when it nests too many MIME parts to be read safely."""
    message = _parse(data)
    if message.get_content_type() != "multipart/report":
        return None
    param = message.get_param("report-type") or ""
    report_type = (param if isinstance(param, str) else "").lower()
    parts = _parts(message)
    if report_type == "delivery-status":
        return _bounce(parts)
    if report_type == "feedback-report":
        return _complaint(parts)
    return None


def _parts(message: Message) -> list[Message]:
    """The sub-parts of a multipart message (or of a DSN's blocks); none for a leaf."""
    payload = message.get_payload() if message.is_multipart() else []
    return [part for part in payload if isinstance(part, Message)]


def _bounce(parts: list[Message]) -> Bounce | None:
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if status is None:
        return None
    # The first block is about the message; each further block is about one recipient.
    recipients = _parts(status)[1:]
    if not recipients:
        return None
    block = next((b for b in recipients if str(b.get("Action", "")).lower() == "failed"),
                 recipients[0])
    failed = str(block.get("Action", "")).strip().lower() == "failed"
    enhanced = str(block.get("Status", "")).strip()
    diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
    _, _, text = diagnostic.partition(";")
    code_text = text.strip() or diagnostic
    head = code_text[:3]
    code = int(head) if head.isdigit() else (550 if enhanced.startswith("5") else 450)
    reply = SmtpReply.parse(code, code_text[3:].strip() if head.isdigit() else code_text)
    if not reply.enhanced and enhanced:
        reply = SmtpReply(reply.code, enhanced, reply.text)
    return Bounce(failed, reply)


def _complaint(parts: list[Message]) -> Complaint | None:
    fields = next((p for p in parts if p.get_content_type() == "message/feedback-report"),
                  None)
    if fields is None:
        return None
    blocks = _parts(fields) or [fields]
    feedback_type = str(blocks[0].get("Feedback-Type", "abuse")).strip().lower()
    original = next((p for p in parts if p.get_content_type() in (
        "message/rfc822", "text/rfc822-headers")), None)
    return_path = None
    if original is not None:
        raw = None if original.is_multipart() else original.get_payload(decode=True)
        inner = _parts(original)[0] if original.is_multipart() else _parse(
            raw if isinstance(raw, bytes) else b"")
        return_path = str(inner.get("Return-Path", "")).strip().strip("<>") or None
    return Complaint(feedback_type, return_path)


def _parse(data: bytes) -> Message:
    """`data` as a message, once its nesting is known to be bounded (a count of composite
    parts bounds how deep they can nest, without parsing them)."""
    if len(_COMPOSITE.findall(data)) > MAX_COMPOSITE_PARTS:
        raise TooDeep(f"more than {MAX_COMPOSITE_PARTS} multipart or message parts")
    try:
        return message_from_bytes(data, policy=policy.compat32)
    except RecursionError as exc:  # nesting of a shape the count did not foresee
        raise TooDeep("nested too deeply to be read") from exc
