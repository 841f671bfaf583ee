"""The users' mail (confirmations, resets, invitations, notices), through the platform's
own sender: a sender that can't send (a bad MAILHAVEN_SYSTEM_FROM, a refused message) is
one clear Unavailable, so that no page answers with a 500."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from mailhaven.errors import BadRequest, Unavailable
from mailhaven.services import Services
from mailhaven.site.mail import send_system_mail

log = logging.getLogger(__name__)
CANNOT_MAIL = ("We can't send mail right now, so nothing was done. Please try again later; "
               "if it keeps happening, tell the operator of this installation.")


def send(session: Session, services: Services, *, to: str, subject: str, text: str) -> None:
    """`send_system_mail`, its refusals as Unavailable (the caller's transaction then rolls
    back: no link is left that nobody was mailed)."""
    try:
        send_system_mail(session, services, to=to, subject=subject, text=text)
    except (ValueError, BadRequest) as refused:
        log.error("system mail refused: %s", refused)  # the operator's setting, no address
        raise Unavailable(CANNOT_MAIL) from None
