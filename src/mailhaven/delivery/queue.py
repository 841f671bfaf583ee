"""Claim due deliveries as leases, and settle them: delivered, retried, or failed.

The deliveries are a leased queue (`storage.leases`): a worker that dies lets its leases
run out, and a worker that lost a lease can't settle the copy any more.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr

from cryptography.exceptions import InvalidTag
from sqlalchemy import Row, and_, case, func, null, select
from sqlalchemy.orm import Session, lazyload

from mailhaven.clock import Clock
from mailhaven.controls.service import NO_LIMITS, Limits
from mailhaven.controls.service import limits as subject_limits
from mailhaven.delivery.models import CANCELLED, DELIVERED, FAILED, QUEUED, Delivery
from mailhaven.domains.models import Domain
from mailhaven.events.service import Recipient, record_each
from mailhaven.failure_reasons import FailureReason
from mailhaven.messages import content
from mailhaven.messages.content import MessageFacts
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.storage.db import Database
from mailhaven.storage.group_commit import GroupCommit
from mailhaven.storage.leases import Lease, LeasedQueue
from mailhaven.suppressions import service as suppressions
from mailhaven.tracking.policy import DomainTracking
from mailhaven.vault import Vault, VaultKey

log = logging.getLogger("mailhaven.delivery")
SETTLE_BATCH = 200  # outcomes recorded in one transaction, at most


@dataclass(frozen=True)
class Job:
    """Everything one delivery attempt needs, decrypted, detached from the session."""

    delivery_id: int
    attempts: int
    lease: Lease  # the claim that holds the copy: only it may settle it
    account_id: str
    domain_id: str
    domain_name: str
    recipient: str  # "Name <addr>" as given
    email: str
    variables: dict | None
    document: Document | None  # None once the body's retention ran out
    facts: MessageFacts
    subject_key: VaultKey
    dkim: bool
    require_tls: bool
    verify_tls: bool
    due_since: float  # accepted, or the scheduled time: the give-up age counts from here
    tracking: DomainTracking = DomainTracking()
    limits: Limits = NO_LIMITS  # the recipient's restriction, objection, withdrawn consents
    suppressed: FailureReason | None = None  # on a list, or limited: must not be sent
    first_attempt_seconds: float | None = None  # from acceptance to the first attempt

    @property
    def owner(self) -> str:
        return self.lease.owner

    @property
    def first_attempt(self) -> dict[str, float]:
        """Mailgun's `first-delivery-attempt-seconds`, for the delivery-status of the copy's
        events; nothing for a copy queued before the time was kept."""
        seconds = self.first_attempt_seconds
        return {} if seconds is None else {"first-delivery-attempt-seconds": seconds}


QUEUE = LeasedQueue(Delivery, waiting=QUEUED, cancelled=CANCELLED)


def claim(db: Database, vault: Vault, *, owner: str, now: float, limit: int,
          lease_seconds: float, held: Mapping[str, int] | None = None,
          capacity: int | None = None) -> list[Job]:
    """Lease up to `limit` due copies to `owner` and return them ready to send. `held`: the
    copies of each account the worker has in flight already, out of `capacity` (its
    concurrency): the fair shares of this claim are counted over both."""
    with db.transaction() as session:
        # Plain rows as the claim's UPDATE returns them, not ORM objects: only read, and
        # building objects was most of a claim.
        lease, rows = QUEUE.claim_rows(
            session, owner=owner, now=now, limit=limit, lease_seconds=lease_seconds,
            held=held, capacity=capacity, attempts=Delivery.attempts + 1,
            first_attempt_at=case((Delivery.attempts == 0, now),
                                  else_=Delivery.first_attempt_at))
        if not rows:
            return []
    # Decrypting and parsing bodies happens after the commit, outside the write lock.
    with db.sessions() as session:
        # A copy cancelled while a worker that then died held it: settled, never sent.
        cancelled = [r.id for r in rows if r.cancel_requested]
        jobs, unreadable = _jobs(session, vault, [r for r in rows if not r.cancel_requested],
                                 lease)
        jobs = _with_suppressions(session, vault, jobs)
    if unreadable or cancelled:
        with db.transaction() as session:
            QUEUE.settle(session, unreadable + cancelled, lease, now, status=CANCELLED)
    return jobs


def _jobs(session: Session, vault: Vault, rows: Sequence[Delivery | Row],
          lease: Lease) -> tuple[list[Job], list[int]]:
    """The jobs for `rows` (deliveries, as objects or plain rows), and the ids of rows that
    can no longer be read (an erased key, a missing message): those are cancelled, never
    allowed to stall the queue."""
    messages = {m.id: m for m in session.execute(
        select(Message.__table__).where(Message.id.in_({r.message_id for r in rows})))}
    # The domains' own columns only: their DKIM keys are the signer's, loaded apart.
    domains = {d.id: (d.name, DomainTracking.of(d)) for d in session.scalars(
        select(Domain).where(Domain.id.in_({m.domain_id for m in messages.values()}))
        .options(lazyload(Domain.dkim_keys)))}
    keys = vault.keys(session, {r.subject_key_id for r in rows}
                      | {m.content_key_id for m in messages.values()})
    documents: dict[str, tuple[Document, MessageFacts]] = {}
    jobs, unreadable = [], []
    for row in rows:
        try:
            jobs.append(_job(vault, row, messages[row.message_id], domains, keys, documents,
                             lease))
        except (KeyError, InvalidTag, ValueError):
            log.warning("delivery %s cannot be read any more; cancelled", row.id)
            unreadable.append(row.id)
    return jobs, unreadable


def describe(session: Session, vault: Vault, delivery_id: int) -> Job | None:
    """A delivered or failed copy, read back to report what happened to it later (an
    asynchronous bounce or a complaint); None if it is gone or can't be read."""
    row = session.get(Delivery, delivery_id)
    if row is None:
        return None
    jobs, _ = _jobs(session, vault, [row], Lease("", row.next_attempt_at))
    return jobs[0] if jobs else None


def _with_suppressions(session: Session, vault: Vault, jobs: list[Job]) -> list[Job]:
    """Each job with what stops it (a suppression list, the recipient's restriction,
    objection or withdrawn consent) and the limits on tracking it, looked up for the whole
    claim at once."""
    index = {j.delivery_id: (j.domain_id, vault.blind_index(j.account_id, j.email))
             for j in jobs}
    listed = suppressions.lookup(session, index.values())
    by_account: dict[str, dict] = {}
    for account_id in {j.account_id for j in jobs}:
        by_account[account_id] = subject_limits(session, account_id, (
            index[j.delivery_id][1] for j in jobs if j.account_id == account_id))
    checked = []
    for job in jobs:
        marketing = job.document is None or job.document.marketing
        limits = by_account[job.account_id].get(index[job.delivery_id][1], NO_LIMITS)
        lists = listed.get(index[job.delivery_id], {})
        if not marketing:  # a service message: only bounces and complaints stop it
            lists = {k: v for k, v in lists.items() if k != "unsubscribes"}
        reason = (suppressions.reason_for(lists, job.facts.tags) if lists else None) \
            or limits.blocks_mail(marketing=marketing)
        checked.append(replace(job, suppressed=reason, limits=limits))
    return checked


def _facts_without_body(message: Message | Row, recipient: str,
                        message_id: str) -> MessageFacts:
    """What a copy's later events (an unsubscribe, a late bounce) can still say once the
    body's retention ran out: the message row's own columns, and the copy's recipient and
    Message-ID (sealed with it)."""
    headers = {"to": recipient, "from": "", "subject": "", "message-id": message_id}
    return MessageFacts(message.id, message_id, headers, [], message.size,
                        json.loads(message.tags), {}, message.testmode)


def _job(vault: Vault, row: Delivery | Row, message: Message | Row,
         domains: dict[str, tuple[str, DomainTracking]],
         keys: dict[str, VaultKey], documents: dict[str, tuple[Document, MessageFacts]],
         lease: Lease) -> Job:
    key = keys[row.subject_key_id or ""]
    recipient = vault.open_text(key, row.address_sealed, "delivery.address")
    variables = (json.loads(vault.open(key, row.variables_sealed, "delivery.variables"))
                 if row.variables_sealed is not None else None)
    if message.content_sealed is None and row.status != QUEUED:  # the body was purged
        message_id = (vault.open_text(key, row.message_id_sealed, "delivery.message_id")
                      if row.message_id_sealed is not None else "")
        doc, facts = None, _facts_without_body(message, recipient, message_id)
    else:
        if message.id not in documents:
            doc = Document.load(vault.open(keys[message.content_key_id or ""],
                                          message.content_sealed or b"",
                                          f"message:{message.id}"))
            documents[message.id] = (doc, content.facts(
                doc, storage_key=message.id, size=message.size,
                tags=json.loads(message.tags), testmode=message.testmode))
        doc, facts = documents[message.id]
        if variables is not None:
            facts = content.for_recipient(facts, doc, recipient, variables)
    return Job(
        delivery_id=row.id, attempts=row.attempts, lease=lease,
        account_id=row.account_id, domain_id=row.domain_id,
        domain_name=domains[message.domain_id][0], recipient=recipient,
        email=parseaddr(recipient)[1], variables=variables, document=doc, facts=facts,
        subject_key=key, dkim=message.dkim, require_tls=message.require_tls,
        verify_tls=message.require_tls and not message.skip_verification,
        due_since=max(message.created_at, (doc.deliverytime if doc else None) or 0.0),
        tracking=domains[message.domain_id][1],
        first_attempt_seconds=(None if row.first_attempt_at is None
                               else round(max(0.0, row.first_attempt_at - message.created_at), 3)),
    )


def put_back(db: Database, job: Job, *, now: float, due: float) -> bool:
    """Return a claimed copy untried (its destination was at a limit): due at `due`, the
    lease released, the claim not counted as an attempt; False if the lease was lost."""
    with db.transaction() as session:
        return bool(QUEUE.settle(session, [job.delivery_id], job.lease, now,
                                 next_attempt_at=due, attempts=Delivery.attempts - 1,
                                 first_attempt_at=case((Delivery.attempts == 1, null()),
                                                       else_=Delivery.first_attempt_at)))


CANCEL_BATCH = 1000  # copies cancelled in one transaction, at most


def cancel_queued(db: Database, account_id: str, domain_id: str, *, now: float) -> int:
    """Cancel the domain's copies queued by `now`, whether scheduled, due or waiting for a
    retry (`DELETE /v3/{domain}/envelopes`), a bounded number per transaction; how many.
    A copy a worker is attempting at this moment is left to it (`LeasedQueue.cancel`).
    Cancelled copies record no event: Mailgun documents none for this."""
    mine = and_(Delivery.account_id == account_id, Delivery.domain_id == domain_id,
                Delivery.created_at <= now)
    cancelled = 0
    while True:
        with db.transaction() as session:
            ids = QUEUE.cancel(session, mine, now, limit=CANCEL_BATCH)
        cancelled += len(ids)
        if len(ids) < CANCEL_BATCH:
            return cancelled


@dataclass(frozen=True)
class Waiting:
    """A domain's queued copies: `scheduled`, not yet tried and not yet due (o:deliverytime,
    or held back a moment by pacing); `regular`, the others (due, being attempted, or
    waiting for a retry)."""

    regular: int
    scheduled: int


def waiting(session: Session, account_id: str, domain_id: str, *, now: float) -> Waiting:
    scheduled = and_(Delivery.attempts == 0, Delivery.next_attempt_at > now)
    total, later = session.execute(
        select(func.count(), func.coalesce(func.sum(case((scheduled, 1), else_=0)), 0))
        .where(QUEUE.waiting_rows, Delivery.account_id == account_id,
               Delivery.domain_id == domain_id)).one()
    return Waiting(regular=total - later, scheduled=later)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, to be recorded: the copy's new status and its event."""

    job: Job
    event: str  # "delivered" or "failed"
    status: str  # DELIVERED, FAILED, or QUEUED again for a retry
    next_attempt_at: float | None
    extra: dict  # the event's own fields: severity, reason, delivery-status
    then: Callable[[Session], None] | None = None  # more to write with it (a bounce to list)


def settle(db: Database, vault: Vault, job: Job, *, now: float, status: str,
           next_attempt_at: float | None, event: str, extra: dict,
           then: Callable[[Session], None] | None = None) -> dict | None:
    """Record an attempt's outcome and its event, and `then` (a bounce to list) in the same
    transaction; None if the lease was lost meanwhile."""
    return settle_all(db, vault, [Outcome(job, event, status, next_attempt_at, extra, then)],
                      now=now)[0]


def settler(db: Database, vault: Vault, clock: Clock) -> GroupCommit[Outcome, dict | None]:
    """The worker's writer of outcomes: attempts that end together are recorded in one
    transaction (one commit, one fsync on PostgreSQL, a few statements for many copies)."""
    return GroupCommit(lambda outcomes: settle_all(db, vault, outcomes, now=clock.now()),
                       max_batch=SETTLE_BATCH, name="delivery outcomes")


def settle_all(db: Database, vault: Vault, outcomes: Sequence[Outcome], *,
               now: float) -> list[dict | None]:
    """Record many outcomes in one transaction (one commit, a few statements): for each, its
    event, or None if its lease was lost meanwhile."""
    with db.transaction() as session:
        return record_outcomes(session, vault, outcomes, now=now)


def record_outcomes(session: Session, vault: Vault, outcomes: Sequence[Outcome], *,
                    now: float) -> list[dict | None]:
    """`settle_all` in the caller's transaction: one UPDATE per claim and kind of outcome,
    fenced by the lease, then one INSERT of events per account, domain and event."""
    groups: dict[tuple[Lease, str, float | None], list[int]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome.job.lease, outcome.status, outcome.next_attempt_at)].append(
            outcome.job.delivery_id)
    settled: set[int] = set()
    for (lease, status, due), ids in groups.items():
        values: dict[str, object] = {"status": status}
        if due is not None:
            values["next_attempt_at"] = due
        settled |= QUEUE.settle(session, ids, lease, now, **values)
    kept = [o for o in outcomes if o.job.delivery_id in settled]
    for outcome in kept:
        if outcome.then is not None:
            outcome.then(session)
    events: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    for outcome in kept:
        events[(outcome.job.account_id, outcome.job.domain_id, outcome.event)].append(outcome)
    documents: dict[int, dict] = {}
    for (account_id, domain_id, event), group in events.items():
        recorded = record_each(
            session, vault, account_id=account_id, domain_id=domain_id, event=event,
            copies=[(o.job.facts, Recipient(o.job.email, o.job.subject_key, o.job.limits))
                    for o in group],
            timestamp=now, extras=[o.extra for o in group])
        documents.update(zip((o.job.delivery_id for o in group), recorded, strict=True))
    return [documents.get(o.job.delivery_id) for o in outcomes]


__all__ = ["DELIVERED", "FAILED", "QUEUED", "Job", "Outcome", "Waiting", "cancel_queued", "claim",
           "put_back", "settle", "settle_all", "waiting"]
