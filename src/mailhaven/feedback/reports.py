"""Read a delivery status notification or an abuse report out of a received message."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from mailhaven.delivery.replies import SmtpReply


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
    """The report in `data`, or None when it is neither a DSN nor an ARF report."""
    message = message_from_bytes(data, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    param = message.get_param("report-type") or ""
    report_type = (param if isinstance(param, str) else "").lower()
    parts = message.get_payload() if message.is_multipart() else []
    if report_type == "delivery-status":
        return _bounce(parts)
    if report_type == "feedback-report":
        return _complaint(parts)
    return None


def _bounce(parts: list[Message]) -> Bounce | None:
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if status is None:
        return None
    # The first block is about the message; each further block is about one recipient.
    recipients = status.get_payload()[1:] if status.is_multipart() else []
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
    blocks = (fields.get_payload() if fields.is_multipart() else [fields]) or [fields]
    feedback_type = str(blocks[0].get("Feedback-Type", "abuse")).strip().lower()
    original = next((p for p in parts if p.get_content_type() in (
        "message/rfc822", "text/rfc822-headers")), None)
    return_path = None
    if original is not None:
        inner = original.get_payload(0) if original.is_multipart() else message_from_bytes(
            original.get_payload(decode=True) or b"", policy=policy.compat32)
        return_path = str(inner.get("Return-Path", "")).strip().strip("<>") or None
    return Complaint(feedback_type, return_path)
