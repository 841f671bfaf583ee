"""Claim due deliveries as leases, and settle them: delivered, retried, or failed.

A claim moves `next_attempt_at` to the end of the lease and stamps `lease_owner`; a worker
that dies simply lets the lease run out, and the row is due again for anyone to claim.
Settling is fenced by `lease_owner`, so a worker that lost its lease can't overwrite.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailhaven.delivery.models import DELIVERED, FAILED, QUEUED, Delivery
from mailhaven.domains.models import Domain
from mailhaven.events.service import Recipient, record
from mailhaven.sending import content
from mailhaven.sending.content import MessageFacts
from mailhaven.sending.models import Message
from mailhaven.storage.db import Database
from mailhaven.vault import Vault, VaultKey


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
    document: dict
    facts: MessageFacts
    subject_key: VaultKey
    dkim: bool
    require_tls: bool
    verify_tls: bool
    created_at: float


def _due_ids(session: Session, now: float, limit: int) -> list[int]:
    query = (select(Delivery.id)
             .where(Delivery.status == QUEUED, Delivery.next_attempt_at <= now)
             .order_by(Delivery.next_attempt_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    # On SQLite the transaction began IMMEDIATE: it already holds the only write lock.
    return list(session.scalars(query))


def claim(db: Database, vault: Vault, *, owner: str, now: float, limit: int,
          lease_seconds: float) -> list[Job]:
    with db.transaction() as session:
        ids = _due_ids(session, now, limit)
        if not ids:
            return []
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids))
            .values(lease_owner=owner, next_attempt_at=now + lease_seconds,
                    attempts=Delivery.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        rows = session.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
        return _jobs(session, vault, rows, owner)


def _jobs(session: Session, vault: Vault, rows: list[Delivery], owner: str) -> list[Job]:
    messages = {m.id: m for m in session.scalars(
        select(Message).where(Message.id.in_({r.message_id for r in rows})))}
    domains = {d.id: d for d in session.scalars(
        select(Domain).where(Domain.id.in_({m.domain_id for m in messages.values()})))}
    key_ids = {r.subject_key_id for r in rows} | {m.content_key_id for m in messages.values()}
    keys = {k.id: k for k in session.scalars(select(VaultKey).where(VaultKey.id.in_(key_ids)))}
    documents: dict[str, tuple[dict, MessageFacts]] = {}
    jobs = []
    for row in rows:
        message = messages[row.message_id]
        if message.id not in documents:
            doc = content.load(vault.open(keys[message.content_key_id], message.content_sealed,
                                          f"message:{message.id}"))
            documents[message.id] = (doc, content.facts(
                doc, storage_key=message.id, size=message.size,
                tags=json.loads(message.tags), testmode=message.testmode))
        doc, facts = documents[message.id]
        key = keys[row.subject_key_id]
        recipient = vault.open_text(key, row.address_sealed, "delivery.address")
        variables = (json.loads(vault.open(key, row.variables_sealed, "delivery.variables"))
                     if row.variables_sealed is not None else None)
        if variables is not None:
            facts = content.for_recipient(facts, variables)
        jobs.append(Job(
            delivery_id=row.id, attempts=row.attempts, owner=owner,
            account_id=row.account_id, domain_id=row.domain_id,
            domain_name=domains[message.domain_id].name, recipient=recipient,
            email=parseaddr(recipient)[1], variables=variables, document=doc, facts=facts,
            subject_key=key, dkim=message.dkim, require_tls=message.require_tls,
            verify_tls=message.require_tls and not message.skip_verification,
            created_at=message.created_at,
        ))
    return jobs


def _settle(session: Session, job: Job, now: float, **values: object) -> bool:
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == job.delivery_id, Delivery.lease_owner == job.owner,
               Delivery.status == QUEUED)
        .values(lease_owner=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def settle(db: Database, vault: Vault, job: Job, *, now: float, status: str,
           next_attempt_at: float | None, event: str, extra: dict) -> dict | None:
    """Record an attempt's outcome and its event; None if the lease was lost meanwhile."""
    values: dict[str, object] = {"status": status}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    with db.transaction() as session:
        if not _settle(session, job, now, **values):
            return None
        return record(session, vault, account_id=job.account_id, domain_id=job.domain_id,
                      facts=job.facts, event=event,
                      recipient=Recipient(job.email, job.subject_key), timestamp=now,
                      extra=extra)


__all__ = ["DELIVERED", "FAILED", "QUEUED", "Job", "claim", "settle"]
