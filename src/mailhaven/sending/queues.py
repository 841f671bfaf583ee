"""A domain's sending queues as Mailgun shows them (`GET /v3/domains/{d}/sending_queues`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailhaven.delivery.queue import waiting
from mailhaven.domains.models import Domain
from mailhaven.sending.service import UNVERIFIED, may_send


def state(session: Session, domain: Domain, *, now: float,
          require_verified: bool) -> dict[str, dict[str, object]]:
    """`regular` and `scheduled`, each with Mailgun's `is_disabled` (and `disabled{until,
    reason}` when it is: no new message is taken) and Mailhaven's `queued`, the copies
    waiting in it. Mailhaven refuses new mail for one reason only, an unverified domain
    where verification is required; that lasts until DNS verifies it, so `until` is empty."""
    queued = waiting(session, domain.account_id, domain.id, now=now)
    disabled: dict[str, object] = {} if may_send(domain, require_verified=require_verified) else {
        "disabled": {"until": "", "reason": UNVERIFIED}}
    return {name: {"is_disabled": bool(disabled), **disabled, "queued": count}
            for name, count in (("regular", queued.regular), ("scheduled", queued.scheduled))}
