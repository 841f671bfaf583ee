"""Claim due deliveries as leases, and settle them: delivered, retried, or failed.

A claim moves `next_attempt_at` to the end of the lease and stamps `lease_owner`; a worker
that dies simply lets the lease run out, and the row is due again for anyone to claim.
Settling is fenced by `lease_owner`, so a worker that lost its lease can't overwrite.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr

from cryptography.exceptions import InvalidTag
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Row,
    ScalarSelect,
    Select,
    Update,
    bindparam,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

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
from mailhaven.storage.db import Database, affected
from mailhaven.storage.fair_shares import fair_shares
from mailhaven.storage.group_commit import GroupCommit
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
    owner: str
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


def _due_ids(session: Session, now: float, limit: int, held: Mapping[str, int],
             capacity: int) -> list[int]:
    """Up to `limit` due copies, shared fairly between the accounts that have some: each
    account first gets up to its share of the worker (`capacity` over the accounts due,
    less what the worker holds of it already), the account waiting longest first; slots
    left over go to the oldest due copies of anyone. One account's backlog of thousands
    delays another's mail by a claim at most, not by the time it takes to send it."""
    accounts = _due_accounts(session, now)
    if len(accounts) <= 1:  # nobody to share with: the oldest due, as fast as ever
        return list(session.scalars(_locked(session, _oldest_due(now, limit))))
    rooms = fair_shares(accounts, limit=limit, capacity=capacity, held=held)
    ids: list[int] = []
    if rooms:  # one statement for all the accounts' shares
        params: dict[str, object] = {"now": now}
        for i, (account_id, room) in enumerate(rooms.items()):
            params |= {f"account_{i}": account_id, f"room_{i}": room}
        ids = list(session.scalars(
            _shares(len(rooms), session.get_bind().dialect.name == "postgresql"), params))
    if len(ids) < limit:
        ids += session.scalars(_locked(session, _oldest_due(now, limit - len(ids))
                                       .where(Delivery.id.not_in(ids))))
    return ids


# Written out, not bound: only a query that says `status = 'queued'` itself may use the
# partial index ix_deliveries_queued_by_account (on PostgreSQL and SQLite alike).
_QUEUED = Delivery.status == literal(QUEUED, literal_execute=True)


def _oldest_due(now: float, limit: int) -> Select:
    return (select(Delivery.id)
            .where(Delivery.status == QUEUED, Delivery.next_attempt_at <= now)
            .order_by(Delivery.next_attempt_at).limit(limit))


@functools.lru_cache(maxsize=128)
def _shares(accounts: int, postgresql: bool) -> CompoundSelect:
    """The oldest due copies of `accounts` accounts, up to a number for each: built once
    for each number of accounts (building it is most of its cost)."""
    parts = []
    for i in range(accounts):
        query = (select(Delivery.id)
                 .where(_QUEUED, Delivery.account_id == bindparam(f"account_{i}"),
                        Delivery.next_attempt_at <= bindparam("now"))
                 .order_by(Delivery.next_attempt_at).limit(bindparam(f"room_{i}")))
        if postgresql:
            query = query.with_for_update(skip_locked=True)
        parts.append(select(query.subquery().c.id))
    return union_all(*parts)


def _locked(session: Session, query: Select) -> Select:
    """`query` taking the rows it finds, skipping those another claim is taking now. On
    SQLite the transaction began IMMEDIATE: it already holds the only write lock."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def _due_accounts(session: Session, now: float) -> dict[str, float]:
    """The accounts with copies due now, each with its oldest due time."""
    return {account_id: due for account_id, due in session.execute(_queued_accounts())
            if due <= now}


@functools.cache
def _queued_accounts() -> Select:
    """The accounts with queued copies, each with its oldest due time: a recursive query
    that skips through ix_deliveries_queued_by_account one account at a time, a few index
    lookups per account however many copies each has. Built once: building it costs more
    than running it."""
    queued = Delivery.__table__.c

    def first_account(*after: ColumnElement[bool]) -> ScalarSelect:
        # Ordered as the index is (account, due), so that no other index can serve it: a
        # plan walking ix_deliveries_account_id would read every delivered row on the way.
        return (select(queued.account_id).where(_QUEUED, *after)
                .order_by(queued.account_id, queued.next_attempt_at).limit(1)
                .scalar_subquery())

    walk = select(first_account().label("account_id")).cte("queued_accounts", recursive=True)
    step = walk.alias("previous")
    walk = walk.union_all(select(first_account(queued.account_id > step.c.account_id))
                          .where(step.c.account_id.is_not(None)))
    oldest = (select(func.min(queued.next_attempt_at))
              .where(_QUEUED, queued.account_id == walk.c.account_id).scalar_subquery())
    return select(walk.c.account_id, oldest).where(walk.c.account_id.is_not(None))


def claim(db: Database, vault: Vault, *, owner: str, now: float, limit: int,
          lease_seconds: float, held: Mapping[str, int] | None = None,
          capacity: int | None = None) -> list[Job]:
    """Lease up to `limit` due copies to `owner` and return them ready to send. `held`: the
    copies of each account the worker has in flight already, out of `capacity` (its
    concurrency): the fair shares of this claim are counted over both."""
    with db.transaction() as session:
        ids = _due_ids(session, now, limit, held or {}, capacity or limit)
        if not ids:
            return []
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids))
            .values(lease_owner=owner, next_attempt_at=now + lease_seconds,
                    attempts=Delivery.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    # Decrypting and parsing bodies happens after the commit, outside the write lock.
    with db.sessions() as session:
        # Plain rows, not ORM objects: only read, and building objects was most of a claim.
        rows = session.execute(select(Delivery.__table__).where(Delivery.id.in_(ids))).all()
        jobs, unreadable = _jobs(session, vault, list(rows), owner)
        jobs = _with_suppressions(session, vault, jobs)
    if unreadable:
        with db.transaction() as session:
            _settle_many(session, unreadable, owner, now, status=CANCELLED)
    return jobs


def _jobs(session: Session, vault: Vault, rows: Sequence[Delivery | Row],
          owner: str) -> tuple[list[Job], list[int]]:
    """The jobs for `rows` (deliveries, as objects or plain rows), and the ids of rows that
    can no longer be read (an erased key, a missing message): those are cancelled, never
    allowed to stall the queue."""
    messages = {m.id: m for m in session.execute(
        select(Message.__table__).where(Message.id.in_({r.message_id for r in rows})))}
    domains = {d.id: (d.name, DomainTracking.of(d)) for d in session.scalars(
        select(Domain).where(Domain.id.in_({m.domain_id for m in messages.values()})))}
    keys = vault.keys(session, {r.subject_key_id for r in rows}
                      | {m.content_key_id for m in messages.values()})
    documents: dict[str, tuple[Document, MessageFacts]] = {}
    jobs, unreadable = [], []
    for row in rows:
        try:
            jobs.append(_job(vault, row, messages[row.message_id], domains, keys, documents,
                             owner))
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
    jobs, _ = _jobs(session, vault, [row], owner="")
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
         owner: str) -> Job:
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
        delivery_id=row.id, attempts=row.attempts, owner=owner,
        account_id=row.account_id, domain_id=row.domain_id,
        domain_name=domains[message.domain_id][0], recipient=recipient,
        email=parseaddr(recipient)[1], variables=variables, document=doc, facts=facts,
        subject_key=key, dkim=message.dkim, require_tls=message.require_tls,
        verify_tls=message.require_tls and not message.skip_verification,
        due_since=max(message.created_at, (doc.deliverytime if doc else None) or 0.0),
        tracking=domains[message.domain_id][1],
    )


def _fenced(ids: list[int], owner: str, now: float, **values: object) -> Update:
    """Settle the copies of `ids` that `owner` still holds, releasing the lease."""
    return (update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.lease_owner == owner,
                   Delivery.status == QUEUED)
            .values(lease_owner=None, updated_at=now, **values)
            .execution_options(synchronize_session=False))


def _settle_many(session: Session, ids: list[int], owner: str, now: float,
                 **values: object) -> int:
    return affected(session.execute(_fenced(ids, owner, now, **values)))


def _settle(session: Session, job: Job, now: float, **values: object) -> bool:
    return _settle_many(session, [job.delivery_id], job.owner, now, **values) == 1


def put_back(db: Database, job: Job, *, now: float, due: float) -> bool:
    """Return a claimed copy untried (its destination was at a limit): due at `due`, the
    lease released, the claim not counted as an attempt; False if the lease was lost."""
    with db.transaction() as session:
        return _settle(session, job, now, next_attempt_at=due, attempts=Delivery.attempts - 1)


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
    """`settle_all` in the caller's transaction: one UPDATE per kind of outcome, fenced by
    the lease, then one INSERT of events per account, domain and event."""
    groups: dict[tuple[str, str, float | None], list[int]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome.job.owner, outcome.status, outcome.next_attempt_at)].append(
            outcome.job.delivery_id)
    settled: set[int] = set()
    for (owner, status, due), ids in groups.items():
        values: dict[str, object] = {"status": status}
        if due is not None:
            values["next_attempt_at"] = due
        settled.update(session.scalars(
            _fenced(ids, owner, now, **values).returning(Delivery.id)))
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


__all__ = ["DELIVERED", "FAILED", "QUEUED", "Job", "Outcome", "claim", "put_back", "settle",
           "settle_all"]
