"""Opens, clicks and unsubscribes: what a recipient did with a delivered copy, recorded as
Mailgun's `opened`, `clicked` and `unsubscribed` events."""

from __future__ import annotations

import json
from email.utils import parseaddr
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session
from ua_parser import parse

from mailhaven.clock import Clock
from mailhaven.controls.service import NO_LIMITS
from mailhaven.controls.service import limits as subject_limits
from mailhaven.delivery.queue import describe
from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.events.service import Recipient, record
from mailhaven.privacy import service as privacy
from mailhaven.suppressions import service as suppressions
from mailhaven.tracking.links import Link
from mailhaven.tracking.policy import may_track
from mailhaven.vault import Vault

EVENTS = {"o": "opened", "c": "clicked", "u": "unsubscribed"}
UNKNOWN_PLACE = {"country": "Unknown", "region": "Unknown", "city": "Unknown"}
_EMAIL_CLIENTS = ("outlook", "thunderbird", "apple mail", "airmail", "postbox", "spark",
                  "googleimageproxy", "yahoomailproxy")


@lru_cache(maxsize=4096)
def client_info(user_agent: str) -> dict:
    """Mailgun's `client-info` from a User-Agent header."""
    result = parse(user_agent) if user_agent else None
    agent = result.user_agent.family if result and result.user_agent else "unknown"
    system = result.os.family if result and result.os else "unknown"
    device = (result.device.family if result and result.device else "") or ""
    if "spider" in device.lower() or "bot" in agent.lower():
        device_type = "unknown"
    elif "ipad" in device.lower() or "tablet" in device.lower():
        device_type = "tablet"
    elif system in ("iOS", "Android") or "phone" in device.lower():
        device_type = "mobile"
    elif result is None or system == "Other":
        device_type = "unknown"
    else:
        device_type = "desktop"
    if any(name in agent.lower() for name in _EMAIL_CLIENTS):
        client_type = "email client"
    elif device_type in ("mobile", "tablet"):
        client_type = "mobile browser"
    else:
        client_type = "browser" if result is not None and agent != "Other" else "unknown"
    return {"client-type": client_type, "client-os": system, "device-type": device_type,
            "client-name": agent, "user-agent": user_agent}


def engage(session: Session, vault: Vault, link: Link, *, ip: str, user_agent: str,
           clock: Clock, consents: privacy.Context) -> str | None:
    """Record what the recipient did, if it may be tracked: an unsubscribe always counts
    (it is the recipient's right, not tracking), once, and one from everything withdraws
    consent through the privacy service (`consents`: the ledger and its audit entry). The
    domain the copy came from, for the unsubscribe page; None when the copy is gone or
    erased."""
    job = describe(session, vault, link.delivery_id)
    if job is None:
        return None
    sender = parseaddr(job.facts.headers["from"])[1].rpartition("@")[2]
    event = EVENTS[link.kind]
    limits = subject_limits(session, job.account_id,
                            [vault.blind_index(job.account_id, job.email)])
    decision = may_track(job.tracking, job.document.tracking if job.document else None,
                         next(iter(limits.values()), NO_LIMITS))
    if (event == "opened" and not decision.opens) or (event == "clicked"
                                                      and decision.clicks == "no"):
        return sender
    extra: dict = {"ip": ip, "geolocation": dict(UNKNOWN_PLACE),
                   "client-info": client_info(user_agent[:512])}
    if event == "clicked":
        extra["url"] = link.data
    if event == "unsubscribed":
        tags = ("*",) if link.data == "*" else tuple(json.loads(link.data))
        domain = session.get(Domain, job.domain_id)
        if domain is None:
            return None
        if not suppressions.unsubscribe(session, vault, domain, job.email, tags, clock):
            return sender  # already unsubscribed from all of it: a replay records nothing
        if tags == ("*",):  # from everything: the consent ledger records the withdrawal
            privacy.consent(session, consents, job.account_id,
                            vault.blind_index(job.account_id, job.email), "marketing-email",
                            granted=False, source="unsubscribe-link")
    first = event != "unsubscribed" and _first(session, vault, job.account_id,
                                               job.facts.storage_key, job.email, event)
    record(session, vault, account_id=job.account_id, domain_id=job.domain_id,
           facts=job.facts, event=event, recipient=Recipient(job.email, job.subject_key),
           timestamp=clock.now(), extra=extra, stats_kind="unique" if first else None)
    return sender


def _first(session: Session, vault: Vault, account_id: str, storage_key: str, email: str,
           event: str) -> bool:
    """Whether this is the recipient's first open (or click) of the message: stats count
    those as `unique`."""
    return session.scalar(select(Event.id).where(
        Event.storage_key == storage_key, Event.event == event,
        Event.recipient_index == vault.blind_index(account_id, email)).limit(1)) is None


