"""Turn a report into the event and the suppression it calls for."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.delivery import queue
from mailhaven.delivery.models import DELIVERED, FAILED, Delivery
from mailhaven.events.models import Event
from mailhaven.events.service import Recipient, record
from mailhaven.failure_reasons import FailureReason
from mailhaven.feedback.reports import Bounce, Complaint
from mailhaven.storage.db import Database
from mailhaven.suppressions import service as suppressions
from mailhaven.vault import Vault

DELAYED_FLAGS = {"is-authenticated": True, "is-routed": False, "is-system-test": False,
                 "is-test-mode": False, "is-delayed-bounce": True}


def _complained(session: Session, job: queue.Job) -> bool:
    return session.scalar(select(Event.id).where(
        Event.storage_key == job.facts.storage_key, Event.event == "complained",
        Event.key_id == job.subject_key.id).limit(1)) is not None


def apply(db: Database, vault: Vault, delivery_id: int, report: Bounce | Complaint,
          clock: Clock = SYSTEM_CLOCK) -> str | None:
    """Record what `report` says about one delivered copy; the event name, or None when
    the copy is unknown (or the report only says "delayed")."""
    if isinstance(report, Bounce) and not report.failed:
        return None  # a delay warning: the remote server is still trying
    with db.transaction() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.status != DELIVERED:
            return None  # never sent, or already bounced: a repeated report changes nothing
        job = queue.describe(session, vault, delivery_id)
        if job is None or (isinstance(report, Complaint) and _complained(session, job)):
            return None
        recipient = Recipient(job.email, job.subject_key)
        now = clock.now()
        if isinstance(report, Complaint):
            record(session, vault, account_id=job.account_id, domain_id=job.domain_id,
                   facts=job.facts, event="complained", recipient=recipient, timestamp=now)
            domain = suppressions.domain_of(session, job.domain_id)
            if domain is not None:
                suppressions.add(session, vault, domain, "complaints",
                                 [suppressions.Entry(job.email)], clock)
            return "complained"
        reply = report.reply
        record(session, vault, account_id=job.account_id, domain_id=job.domain_id,
               facts=job.facts, event="failed", recipient=recipient, timestamp=now,
               extra={"severity": "permanent", "reason": FailureReason.BOUNCE,
                      "flags": DELAYED_FLAGS,
                      "delivery-status": {
                          "code": reply.code, "message": reply.text, "description": "",
                          "enhanced-code": reply.enhanced, "attempt-no": job.attempts,
                          "mx-host": "", "tls": False, "certificate-verified": False,
                          "utf8": True, "session-seconds": 0.0, **job.first_attempt}})
        row.status = FAILED
        if suppressions.lists_as_bounce(reply.code, reply.enhanced):
            suppressions.list_bounce(session, vault, job.domain_id, job.email,
                                     code=reply.code, detail=str(reply), clock=clock)
        return "failed"
