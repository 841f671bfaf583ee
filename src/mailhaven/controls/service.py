"""Restriction, objection and consent: what a subject has said about their processing, and
the one lookup every processing path makes before it acts (SPEC N5, N6).

Where the lookup is used: the delivery worker (no mail to a restricted subject, no
marketing to an objecting one or one who withdrew marketing consent), the tracking
decision (`tracking.policy.may_track`: no opens or clicks), and the stats fold (no
analytics). One query per batch, by keyed blind index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    CompoundSelect,
    Float,
    String,
    bindparam,
    cast,
    func,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from mailhaven.controls.models import Consent, SubjectControl
from mailhaven.errors import BadRequest
from mailhaven.failure_reasons import FailureReason
from mailhaven.storage.db import insert_for

PURPOSES = ("marketing-email", "tracking", "analytics")
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,32}")  # never an address: these are kept in clear
OPT_OUT_DAYS = 10  # the legal limit for honouring an opt-out; Mailhaven does it at once


def holder_index(account_id: str) -> str:
    """An account holder's subject reference (recipients have their blind index)."""
    return f"account:{account_id}"


@dataclass(frozen=True)
class Limits:
    """What may be done with one subject's data beyond storing it."""

    restricted: bool = False  # Art. 18: storage only
    objected: bool = False  # Art. 21: no direct marketing, no tracking, no analytics
    withdrawn: frozenset[str] = frozenset()  # purposes whose consent was withdrawn

    @property
    def may_track(self) -> bool:
        return not (self.restricted or self.objected or "tracking" in self.withdrawn)

    @property
    def may_analyse(self) -> bool:
        return not (self.restricted or self.objected or "analytics" in self.withdrawn)

    def blocks_mail(self, *, marketing: bool) -> FailureReason | None:
        """Why a message must not go out (a `failed` event's reason), or None."""
        if self.restricted:
            return FailureReason.SUPPRESS_RESTRICTION
        if marketing and self.objected:
            return FailureReason.SUPPRESS_OBJECTION
        if marketing and "marketing-email" in self.withdrawn:
            return FailureReason.SUPPRESS_UNSUBSCRIBE
        return None


NO_LIMITS = Limits()


def _limits_query() -> CompoundSelect:
    """The subjects' controls and consents, in one statement: a control's row has no
    purpose; a consent's has no restriction or objection. Built once (building a statement
    costs more than running this one), the account and the indexes bound."""
    indexes: BindParameter[str] = bindparam("indexes", expanding=True)
    return union_all(
        select(SubjectControl.subject_index, SubjectControl.restricted,
               SubjectControl.objected, cast(null(), String).label("purpose"),
               cast(null(), Boolean).label("granted"), cast(null(), Float).label("at"),
               cast(null(), BigInteger).label("id"))
        .where(SubjectControl.account_id == bindparam("account"),
               SubjectControl.subject_index.in_(indexes)),
        select(Consent.subject_index, cast(null(), Boolean), cast(null(), Boolean),
               Consent.purpose, Consent.granted, Consent.at, Consent.id)
        .where(Consent.account_id == bindparam("account"),
               Consent.subject_index.in_(indexes)))


_LIMITS = _limits_query()


def limits(session: Session, account_id: str, indexes: Iterable[str]) -> dict[str, Limits]:
    """The limits on each of these subjects that has any (one statement, two indexed
    reads)."""
    wanted = set(indexes)
    if not wanted:
        return {}
    found: dict[str, Limits] = {}
    consents = []
    for row in session.execute(_LIMITS, {"account": account_id, "indexes": list(wanted)}):
        if row.purpose is None:  # a control
            if row.restricted or row.objected:
                found[row.subject_index] = Limits(bool(row.restricted), bool(row.objected))
        else:
            consents.append(row)
    latest: dict[tuple[str, str], bool] = {}
    for row in sorted(consents, key=lambda r: (r.at, r.id)):  # the ledger's order
        latest[(row.subject_index, row.purpose)] = bool(row.granted)
    for (index, purpose), granted in latest.items():
        if not granted:
            current = found.get(index, NO_LIMITS)
            found[index] = Limits(current.restricted, current.objected,
                                  current.withdrawn | {purpose})
    return found


def set_control(session: Session, account_id: str, index: str, *, now: float,
                restricted: bool | None = None, objected: bool | None = None) -> None:
    row = session.scalar(select(SubjectControl).where(
        SubjectControl.account_id == account_id, SubjectControl.subject_index == index)
        .with_for_update())
    if row is None:
        session.execute(insert_for(session, SubjectControl).on_conflict_do_nothing(), [{
            "account_id": account_id, "subject_index": index, "restricted": False,
            "objected": False, "updated_at": now}])
        row = session.scalar(select(SubjectControl).where(
            SubjectControl.account_id == account_id, SubjectControl.subject_index == index)
            .with_for_update())
    assert row is not None
    if restricted is not None:
        row.restricted = restricted
    if objected is not None:
        row.objected = objected
    row.updated_at = now


def record_consent(session: Session, account_id: str, index: str, purpose: str, *,
                   granted: bool, source: str, notice_version: str, now: float) -> Consent:
    """One entry in the ledger. A withdrawal takes effect at once; its legal deadline
    (10 days for an opt-out) is recorded so the report can show it was met."""
    if purpose not in PURPOSES:
        raise BadRequest(f"purpose must be one of {', '.join(PURPOSES)}")
    if not _LABEL.fullmatch(source) or not _LABEL.fullmatch(notice_version):
        raise BadRequest("source and notice_version are short labels (letters, digits, "
                         "'.', '_', '-'), e.g. signup-form and 2026-11")
    consent = Consent(account_id=account_id, subject_index=index, purpose=purpose,
                      granted=granted, source=source, notice_version=notice_version,
                      at=now, deadline=None if granted else now + OPT_OUT_DAYS * 86400)
    session.add(consent)
    return consent


def consent_json(consent: Consent) -> dict:
    return {"purpose": consent.purpose, "granted": consent.granted, "source": consent.source,
            "notice_version": consent.notice_version, "at": consent.at,
            "effective_at": consent.at, "deadline": consent.deadline}


def ledger(session: Session, account_id: str, index: str) -> list[dict]:
    return [consent_json(c) for c in session.scalars(select(Consent).where(
        Consent.account_id == account_id, Consent.subject_index == index)
        .order_by(Consent.at, Consent.id))]


def control_json(session: Session, account_id: str, index: str) -> dict:
    row = session.scalar(select(SubjectControl).where(
        SubjectControl.account_id == account_id, SubjectControl.subject_index == index))
    return {"restricted": bool(row and row.restricted), "objected": bool(row and row.objected)}


def tally(session: Session, account_id: str) -> list[dict]:
    """How many grants and withdrawals the account's ledger holds, per purpose (for the
    holder's privacy center: counts, no one named)."""
    rows = session.execute(select(Consent.purpose, Consent.granted, func.count())
                           .where(Consent.account_id == account_id)
                           .group_by(Consent.purpose, Consent.granted))
    counts = {(purpose, bool(granted)): n for purpose, granted, n in rows}
    return [{"purpose": p, "granted": counts.get((p, True), 0),
             "withdrawn": counts.get((p, False), 0)} for p in PURPOSES]
