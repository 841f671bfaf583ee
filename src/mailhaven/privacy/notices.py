"""The mails a data subject gets about their request: sent through Mailhaven's own queue
from the domain that mailed them, never tracked, never unsubscribable."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.privacy import requests as reqs
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept
from mailhaven.services import Services


def mail_subject(services: Services, session: Session, domain: Domain, to: str,
                 subject: str, text: str) -> None:
    """A notice to a data subject from `domain`: a service message."""
    message = build_request([("from", f"Privacy <privacy@{domain.name}>"), ("to", to),
                             ("subject", subject), ("text", text),
                             ("o:category", "transactional"), ("o:tracking", "no")], [],
                            now=services.clock.now())
    accept(session, services.vault, domain, message, services.clock)


def tell_subject(services: Services, session: Session, request: PrivacyRequest,
                 subject: str, text: str) -> None:
    """A recipient is told by mail from the domain they named; an account holder sees it
    in the request itself (`extension.notified_at`)."""
    given = reqs.details(services.vault, session, request)
    if request.subject_type != "recipient" or not given.get("domain"):
        return
    domain = session.scalar(select(Domain).where(Domain.name == given["domain"],
                                                 Domain.account_id == request.account_id))
    if domain is not None:
        mail_subject(services, session, domain, given["email"], subject, text)


def tell_extended(services: Services, session: Session, request: PrivacyRequest,
                  now: float) -> None:
    """The subject is told of an extension, its new due date and why."""
    tell_subject(services, session, request, "Your privacy request needs more time",
                 f"Your request ({request.right}) will be answered by "
                 f"{reqs.as_json(services.vault, session, request, now)['due_at'][:10]}, "
                 f"because: {reqs.extension_reason(services.vault, session, request)}\n")
