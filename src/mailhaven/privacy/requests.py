"""Data-subject requests (SPEC N3): every right, with identity, states and deadlines.

An account holder is identified by their login (the API key); anyone else by a one-time
link mailed to the address through Mailhaven's own queue, from the domain that mailed
them. States: received → identity_unverified → verified → in_progress → completed, or
denied (a reason from `DENIAL_REASONS`); `extended` while an extension runs. The due date
is one calendar month after receipt; an extension of up to two more months needs a reason
and must be decided (and the subject told) within that first month.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from mailhaven.clock import iso8601
from mailhaven.disclosures.service import notifications
from mailhaven.errors import BadRequest, Gone, NotFound
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.storage.base import new_id
from mailhaven.vault import Vault, VaultKey

RIGHTS = ("access", "portability", "rectification", "erasure", "restriction", "objection",
          "withdraw-consent")
RECEIVED, UNVERIFIED, VERIFIED = "received", "identity_unverified", "verified"
IN_PROGRESS, COMPLETED, DENIED, EXTENDED = "in_progress", "completed", "denied", "extended"
OPEN_STATES = (RECEIVED, UNVERIFIED, VERIFIED, IN_PROGRESS, EXTENDED)
DENIAL_REASONS = ("identity-not-verified", "manifestly-unfounded", "excessive",
                  "legal-obligation", "legal-claims", "not-the-controller")
MAX_EXTENSION_MONTHS = 2
# A recipient's link is their key to the request's status and export: once the request is
# answered it works for a day, and downloads the export a few times (issue 10).
LINK_HOURS = 24
MAX_DOWNLOADS = 3
LINK_EXPIRED = (f"This link has expired: it works for {LINK_HOURS} hours after the request "
                f"is answered. Ask again for a new one.")
DOWNLOADS_USED = (f"This export has been downloaded {MAX_DOWNLOADS} times, as often as a link "
                  f"allows. Ask again for a new one.")


def add_months(epoch: float, months: int) -> float:
    """The same day `months` calendar months later (the 31st becomes the month's last)."""
    when = datetime.fromtimestamp(epoch, UTC)
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day).timestamp()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Opened:
    request: PrivacyRequest
    token: str | None  # the one-time link's secret, for a recipient; shown once


def open_request(session: Session, vault: Vault, *, account_id: str, right: str,
                 subject_type: str, subject_index: str, key: VaultKey | None,
                 details: dict, now: float, verified: bool) -> Opened:
    if right not in RIGHTS:
        raise BadRequest(f"type must be one of {', '.join(RIGHTS)}")
    token = None if verified else secrets.token_urlsafe(24)
    request = PrivacyRequest(
        id=new_id(), account_id=account_id, right=right, subject_type=subject_type,
        subject_index=subject_index, key_id=key.id if key else None,
        details_sealed=vault.seal(key, json.dumps(details).encode(), "privacy.request")
        if key else None,
        state=VERIFIED if verified else UNVERIFIED, received_at=now,
        due_at=add_months(now, 1), verified_at=now if verified else None,
        token_digest=token_digest(token) if token else None, updated_at=now)
    session.add(request)
    return Opened(request, token)


def _subject_key(vault: Vault, session: Session, request: PrivacyRequest) -> VaultKey | None:
    return vault.keys(session, [request.key_id]).get(request.key_id or "")


def details(vault: Vault, session: Session, request: PrivacyRequest) -> dict:
    """What the requester gave (an address, a correction); {} once their key is erased."""
    key = _subject_key(vault, session, request)
    if key is None or request.details_sealed is None:
        return {}
    return json.loads(vault.open(key, request.details_sealed, "privacy.request"))


def extension_reason(vault: Vault, session: Session, request: PrivacyRequest) -> str | None:
    """Why the answer was extended (it may be about the subject: sealed for them); None if
    it was not, or once their key is erased."""
    if request.extension_sealed is None:
        return None
    key = _subject_key(vault, session, request)
    return None if key is None else vault.open_text(key, request.extension_sealed,
                                                    "privacy.extension")


def by_token(session: Session, token: str, *, now: float,
             lock: bool = False) -> PrivacyRequest:
    """The request a recipient's link names; Gone once it was answered LINK_HOURS ago."""
    query = select(PrivacyRequest).where(PrivacyRequest.token_digest == token_digest(token))
    request = session.scalar(query.with_for_update() if lock else query)
    if request is None:
        raise NotFound("Request not found")
    if request.completed_at is not None and now > request.completed_at + LINK_HOURS * 3600:
        raise Gone(LINK_EXPIRED)
    return request


def owned(session: Session, account_id: str, request_id: str, *,
          lock: bool = False) -> PrivacyRequest:
    request = session.get(PrivacyRequest, request_id, with_for_update=lock)
    if request is None or request.account_id != account_id:
        raise NotFound("Request not found")
    return request


def verify(request: PrivacyRequest, now: float) -> None:
    if request.state != UNVERIFIED:
        return  # clicked twice: nothing more to do
    request.state, request.verified_at, request.updated_at = VERIFIED, now, now


def extend(vault: Vault, session: Session, request: PrivacyRequest, *, months: int,
           reason: str, now: float) -> str:
    """Up to two more months, with a reason, decided within the first month; the reason
    as kept (sealed under the subject's key: nowhere, if that key is gone)."""
    if request.state not in OPEN_STATES:
        raise BadRequest("Only an open request can be extended")
    if not reason.strip():
        raise BadRequest("An extension needs a reason")
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise BadRequest("An extension is 1 or 2 months")
    if request.extension_notified_at is not None:
        raise BadRequest("The request was already extended")
    if now > request.due_at:
        raise BadRequest("An extension must be decided within the first month")
    kept = reason.strip()[:1000]
    key = _subject_key(vault, session, request)
    request.due_at = add_months(request.received_at, 1 + months)
    request.extension_sealed = (vault.seal_text(key, kept, "privacy.extension")
                                if key is not None else None)
    request.extension_notified_at = now
    request.state, request.updated_at = EXTENDED, now
    return kept


def deny(request: PrivacyRequest, *, reason: str, now: float) -> None:
    if reason not in DENIAL_REASONS:
        raise BadRequest(f"reason must be one of {', '.join(DENIAL_REASONS)}")
    if request.state not in OPEN_STATES:
        raise BadRequest("Only an open request can be denied")
    request.state, request.denied_reason = DENIED, reason
    request.completed_at = request.updated_at = now


def complete(request: PrivacyRequest, result: dict, now: float) -> None:
    request.state, request.result = COMPLETED, json.dumps(result)
    request.completed_at = request.updated_at = now


def listed(session: Session, account_id: str | None) -> list[PrivacyRequest]:
    """Every request (of one account, if given), the soonest due first."""
    query = select(PrivacyRequest).order_by(PrivacyRequest.due_at)
    if account_id is not None:
        query = query.where(PrivacyRequest.account_id == account_id)
    return list(session.scalars(query))


def pending(session: Session, account_id: str) -> list[PrivacyRequest]:
    """The account's requests still open, the soonest due first."""
    return list(session.scalars(select(PrivacyRequest).where(
        PrivacyRequest.account_id == account_id, PrivacyRequest.state.in_(OPEN_STATES))
        .order_by(PrivacyRequest.due_at)))


def overdue(session: Session, account_id: str | None, now: float) -> list[PrivacyRequest]:
    query = select(PrivacyRequest).where(PrivacyRequest.state.in_(OPEN_STATES),
                                         PrivacyRequest.due_at < now)
    if account_id is not None:
        query = query.where(PrivacyRequest.account_id == account_id)
    return list(session.scalars(query.order_by(PrivacyRequest.due_at)))


def as_json(vault: Vault, session: Session, request: PrivacyRequest, now: float) -> dict:
    def when(epoch: float | None) -> str | None:
        return None if epoch is None else iso8601(epoch)

    return {"id": request.id, "type": request.right, "subject_type": request.subject_type,
            "state": request.state, "received_at": when(request.received_at),
            "due_at": when(request.due_at), "verified_at": when(request.verified_at),
            "completed_at": when(request.completed_at),
            "extension": None if request.extension_notified_at is None else {
                "reason": extension_reason(vault, session, request),
                "notified_at": when(request.extension_notified_at)},
            "denied_reason": request.denied_reason,
            "overdue": request.state in OPEN_STATES and now > request.due_at,
            "result": _with_notified(session, request)}


def _with_notified(session: Session, request: PrivacyRequest) -> dict:
    """The result, its Article 19 notifications as they stand now (the signed completion
    record inside keeps them as they were queued)."""
    result = json.loads(request.result or "{}")
    if result.get("notified"):
        result["notified"] = [{"party": n["party"], "state": n["state"]} for n in
                              notifications(session, request.account_id, request.id)]
    return result


def expired_working_data(accounts, cutoff: float) -> Select:
    """Finished requests whose working data (address, corrections) is past retention."""
    return select(PrivacyRequest.id).where(
        accounts.of(PrivacyRequest.account_id),
        PrivacyRequest.state.in_((COMPLETED, DENIED)),
        PrivacyRequest.completed_at <= cutoff, PrivacyRequest.details_sealed.is_not(None))


def purge_working_data(session: Session, ids: list) -> None:
    """The record stays (it is the proof the request was answered); what identified the
    requester, and their one-time link, go."""
    session.execute(update(PrivacyRequest).where(PrivacyRequest.id.in_(ids))
                    .values(details_sealed=None, token_digest=None)
                    .execution_options(synchronize_session=False))
