"""Recording disclosures, listing them, and queueing Article 19 notifications.

A disclosure names its subjects by blind index only. Sub-processors are standing recipients
of the categories they list while they are active: computed from the register (main
database), never copied into rows. When a subject is erased, rectified or restricted,
every party that received their data and gave an endpoint is queued a signed POST, in the
transaction that does it (the address's hash is taken before any key is destroyed): each
disclosure naming them, and each sub-processor of the account's region whose categories
cover what the account actually holds about them. Nothing held, nobody told: otherwise any
`privacy` key could make the platform POST to every sub-processor at will.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.addresses import parse_addresses
from mailhaven.clock import iso8601
from mailhaven.disclosures.models import (
    EVENTS,
    KINDS,
    PENDING,
    SIGNING_LABEL,
    SUBJECT_LABEL,
    Disclosure,
    DisclosureSubject,
    Notification,
)
from mailhaven.disclosures.register import Subprocessor, active_subprocessors
from mailhaven.errors import BadRequest, NotFound
from mailhaven.events.models import Event
from mailhaven.inbound.models import InboundMessage
from mailhaven.storage.base import new_id
from mailhaven.storage.db import Database
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.recognise import holds_address
from mailhaven.vault.service import normalize_address
from mailhaven.webhooks.service import url_problem

# What a subject's data is, by the names a sub-processor's categories may use for it
# (compared lower-cased and trimmed): a sub-processor is told only of data it receives.
CATEGORY_NAMES: dict[str, frozenset[str]] = {
    "email address": frozenset({"email address", "email addresses", "address", "addresses",
                                "recipient addresses", "recipients", "contact details"}),
    "delivery events": frozenset({"delivery events", "events", "message metadata",
                                  "metadata", "logs", "delivery logs"}),
    "message content": frozenset({"message content", "messages", "message bodies",
                                  "content", "attachments"}),
    "suppressions": frozenset({"suppressions", "suppression lists", "bounces",
                               "complaints", "unsubscribes"}),
    "account details": frozenset({"account details", "account data", "account holders",
                                  "profile", "profiles", "names"}),
}
MAX_SUBJECTS = 10_000
MAX_LIMIT = 1000
MAX_SKIP = 2**31 - 1  # as other paged lists: an OFFSET every database can take


@dataclass(frozen=True)
class Recorded:
    disclosure: Disclosure
    subjects: int
    signing_key: str | None  # shown once: the party verifies our notifications with it


def _text(name: str, value: str | None, limit: int, *, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def endpoint_problem(url: str, *, allow_http: bool) -> str | None:
    """Why `url` can't take a party's notifications: https only (the body names a subject),
    plain http only where private targets are allowed (tests, LANs), as for sub-processors."""
    if (problem := url_problem(url)) is not None:
        return problem
    if not url.lower().startswith("https://") and not allow_http:
        return "an https:// URL"
    return None


def record(session: Session, vault: Vault, *, account_id: str, recipient: str, kind: str,
           legal_basis: str, purpose: str, categories: list[str], subjects: list[str],
           decided_by: str, now: float, endpoint: str | None = None,
           reference: str | None = None, subprocessor_id: str | None = None,
           main_db: Database | None = None, allow_http: bool = False) -> Recorded:
    """Log one disclosure of the account's data; with an endpoint, a signing key is made
    for the party (returned once, kept sealed). A `subprocessor_id` must be in the
    register (`main_db`'s; None: the session's). The endpoint is https unless
    `allow_http` (settings.webhook_allow_private)."""
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    name = _text("recipient", recipient, 200)
    basis = _text("legal_basis", legal_basis, 200)
    why = _text("purpose", purpose, 2000)
    who = _text("decided_by", decided_by, 200)
    ref = _text("reference", reference, 120, required=False)
    for label, value in (("decided_by", who), ("reference", ref)):
        if value and holds_address(value):
            raise BadRequest(f"{label} can't hold an email address (it is kept in clear)")
    cats = sorted({c.strip() for c in categories if c.strip()})
    if not cats:
        raise BadRequest("at least one data category is required")
    url = _text("endpoint", endpoint, 2048, required=False)
    if url and (problem := endpoint_problem(url, allow_http=allow_http)):
        raise BadRequest(f"endpoint: {problem}")
    if len(subjects) > MAX_SUBJECTS:
        raise BadRequest(f"at most {MAX_SUBJECTS} subjects per disclosure")
    addresses = {_subject(a) for a in subjects if a.strip()}
    if subprocessor_id is not None:
        if kind != "subprocessor":
            raise BadRequest("subprocessor_id is for kind subprocessor")
        if not _in_register(session, main_db, subprocessor_id):
            raise NotFound("No such sub-processor")
    key = secrets.token_hex(32) if url else None
    disclosure = Disclosure(
        id=new_id(), account_id=account_id, recipient=name, recipient_kind=kind,
        subprocessor_id=subprocessor_id, endpoint=url,
        signing_key_sealed=vault.seal_secret(SIGNING_LABEL, key.encode()) if key else None,
        legal_basis=basis, purpose=why, data_categories=json.dumps(cats), decided_by=who,
        reference=ref, at=now)
    session.add(disclosure)
    session.flush()
    indexes = sorted({vault.blind_index(account_id, a) for a in addresses})
    session.add_all(DisclosureSubject(disclosure_id=disclosure.id, subject_index=i)
                    for i in indexes)
    return Recorded(disclosure, len(indexes), key)


def _subject(value: str) -> str:
    """One subject's address, as the blind index names it: a real address (the project's
    parsing: `@` or `x@` is refused), display names dropped."""
    found = parse_addresses([value], "subject", limit=1)
    if not found:
        raise BadRequest("every subject must be an email address")
    return normalize_address(found[0].email)


def _in_register(session: Session, main_db: Database | None, subprocessor_id: str) -> bool:
    """Whether the register (the main database: `session` when it is the main one) has
    the sub-processor, removed or not (a disclosure may be recorded after the fact)."""
    if main_db is None or main_db.engine.url == session.get_bind().engine.url:
        return session.get(Subprocessor, subprocessor_id) is not None
    with main_db.sessions() as main:
        return main.get(Subprocessor, subprocessor_id) is not None


def as_json(disclosure: Disclosure, subjects: int | None = None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": disclosure.id, "recipient": disclosure.recipient,
        "kind": disclosure.recipient_kind, "subprocessor_id": disclosure.subprocessor_id,
        "endpoint": disclosure.endpoint, "legal_basis": disclosure.legal_basis,
        "purpose": disclosure.purpose, "data_categories": disclosure.categories,
        "decided_by": disclosure.decided_by, "reference": disclosure.reference,
        "at": iso8601(disclosure.at)}
    if subjects is not None:
        shown["subjects"] = subjects
    return shown


def listed(session: Session, account_id: str, *, limit: int = 100,
           skip: int = 0) -> list[dict[str, Any]]:
    """The account's disclosures, newest first, each with its number of subjects."""
    if not 1 <= limit <= MAX_LIMIT or not 0 <= skip <= MAX_SKIP:
        raise BadRequest(f"limit must be 1 to {MAX_LIMIT}, skip 0 to {MAX_SKIP}")
    counted = (select(func.count()).where(DisclosureSubject.disclosure_id == Disclosure.id)
               .scalar_subquery())
    rows = session.execute(select(Disclosure, counted).where(
        Disclosure.account_id == account_id)
        .order_by(Disclosure.at.desc(), Disclosure.id.desc()).limit(limit).offset(skip)).all()
    return [as_json(d, n) for d, n in rows]


def naming(session: Session, account_id: str, index: str | None) -> list[Disclosure]:
    """The account's disclosures (those naming the subject `index`, if given), oldest first."""
    query = select(Disclosure).where(Disclosure.account_id == account_id)
    if index is not None:
        query = query.where(Disclosure.id.in_(select(DisclosureSubject.disclosure_id).where(
            DisclosureSubject.subject_index == index)))
    return list(session.scalars(query.order_by(Disclosure.at, Disclosure.id)))


def standing(session: Session, since: float, now: float) -> list[Subprocessor]:
    """Sub-processors active at some time between `since` and `now`: standing recipients
    of the categories they list (the register is in the main database: `session` is it)."""
    return [s for s in session.scalars(select(Subprocessor).order_by(Subprocessor.name))
            if s.effective_at <= now and (s.removed_at is None or s.removed_at > since)]


def subject_hash(address: str) -> str:
    """How a notification names the subject: what the party can match without our keys."""
    return hashlib.sha256(normalize_address(address).encode()).hexdigest()


def _register(session: Session, main_db: Database | None, now: float) -> list[Subprocessor]:
    """The active sub-processors, read in `session` when it is the main database's."""
    if main_db is None or main_db.engine.url == session.get_bind().engine.url:
        return active_subprocessors(session, now)
    with main_db.sessions() as main:
        found = active_subprocessors(main, now)
        main.expunge_all()
        return found


def concerned(session: Session, account_id: str, index: str, *,
              holder: bool = False) -> set[str]:
    """The categories (CATEGORY_NAMES) of what the account holds about the subject now,
    as its sub-processors would have received it; empty when it holds nothing. Only rows
    of mail count: a request's own subject key, or the disclosure log's rows, are no data a
    sub-processor received."""
    if holder:
        return {"email address", "account details"}
    found = set()
    for table, column, categories in (
            (Event, Event.recipient_index, {"delivery events", "message content"}),
            (Suppression, Suppression.value_index, {"suppressions"}),
            (InboundMessage, InboundMessage.recipient_index, {"message content"})):
        if session.scalar(select(exists().where(table.account_id == account_id,
                                                column == index))):
            found |= {"email address", *categories}
    return found


def receives(subprocessor: Subprocessor, categories: set[str], region: str | None) -> bool:
    """Whether the sub-processor received the data concerned: it serves the account's
    region (or every region) and lists one of its categories."""
    if subprocessor.region is not None and subprocessor.region != region:
        return False
    listed = {c.strip().lower() for c in subprocessor.categories}
    return any(listed & CATEGORY_NAMES[c] for c in categories)


def propagate(session: Session, vault: Vault, *, account_id: str, address: str | None,
              index: str, event: str, now: float, request_id: str | None = None,
              main_db: Database | None = None, holder: bool = False) -> list[dict[str, str]]:
    """Queue the Article 19 POSTs for a subject's erasure, rectification or restriction:
    to every disclosure naming them with an endpoint, and to every active sub-processor
    with one that received what the account holds about them (`concerned`, `receives`).
    Returns [{party, state}] for the completion record. Without the address (an already
    erased subject) there is nothing the parties could match: nothing goes."""
    if event not in EVENTS:
        raise ValueError(event)
    if not address:
        return []
    categories = concerned(session, account_id, index, holder=holder)
    account = session.get(Account, account_id)
    region = account.region if account is not None else None
    parties: list[tuple[str, str, str, str]] = []  # name, kind, id, url
    seen: set[str] = set()
    for d in naming(session, account_id, index):
        if d.endpoint and d.endpoint not in seen:
            seen.add(d.endpoint)
            parties.append((d.recipient, "disclosure", d.id, d.endpoint))
    for s in _register(session, main_db, now) if categories else []:
        if (s.notification_endpoint and s.notification_endpoint not in seen
                and receives(s, categories, region)):
            seen.add(s.notification_endpoint)
            parties.append((s.name, "subprocessor", s.id, s.notification_endpoint))
    digest = vault.seal_secret(SUBJECT_LABEL, subject_hash(address).encode())
    session.add_all(Notification(
        account_id=account_id, request_id=request_id, event=event, party=name,
        party_kind=kind, party_id=party_id, url=url, subject_sealed=digest, status=PENDING,
        attempts=0, attempt_log="[]", next_attempt_at=now, created_at=now, updated_at=now)
        for name, kind, party_id, url in parties)
    return [{"party": name, "state": PENDING} for name, *_ in parties]


def notifications(session: Session, account_id: str,
                  request_id: str) -> list[dict[str, Any]]:
    """Where a request's notifications stand now."""
    return [{"party": n.party, "state": n.status, "attempts": n.attempts}
            for n in session.scalars(select(Notification).where(
                Notification.account_id == account_id, Notification.request_id == request_id)
                .order_by(Notification.id))]
