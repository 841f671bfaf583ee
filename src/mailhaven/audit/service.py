"""Append a privacy step to the hash-chained audit log, read it back, and verify the chain.

Each row's hash is HMAC(vault audit key, prev_hash ‖ canonical fields), so someone with write
access to the database but not the key file can change, remove or reorder rows only
visibly. Personal details are sealed under the subject's vault key: erasing the subject
makes them unreadable, and the chain, which covers the ciphertext, still verifies.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailhaven.audit.anchor import Head, HeadAnchor, anchor_for, stage
from mailhaven.audit.models import AuditEntry
from mailhaven.storage.db import one_writer_at_a_time
from mailhaven.vault import Vault, VaultKey
from mailhaven.vault.recognise import holds_address

GENESIS = "0" * 64  # the first row's predecessor
_AUDIT_LOCK = 7_734_202  # PostgreSQL advisory lock id: one appender at a time
_FORMAT = "mailhaven-audit-1"
_MAX_FIELD = 64
log = logging.getLogger(__name__)


class Problem(NamedTuple):
    """One finding of `verify`: the row it concerns (None: the log as a whole) and why."""

    row: int | None
    text: str

    def __str__(self) -> str:
        return self.text if self.row is None else f"row {self.row}: {self.text}"


def append(session: Session, vault: Vault, *, actor: str, action: str,
           target: str | None = None, subject_index: str | None = None,
           details: Mapping[str, Any] | None = None, sealed: Mapping[str, Any] | None = None,
           key: VaultKey | None = None, now: float) -> AuditEntry:
    """Record one step in the caller's write transaction, so it commits or rolls back with
    the step itself. On PostgreSQL the chain stays locked until that transaction ends:
    append late in it.

    `details` must hold nothing personal; what is personal goes in `sealed`, encrypted
    under `key`, the subject's vault key (whose blind index becomes `subject_index` unless
    one is given)."""
    if (sealed is None) != (key is None):
        raise ValueError("sealed details need the subject's key, and a key needs sealed details")
    clear = _canonical(dict(details or {}))
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        if value is not None and not (0 < len(value) <= _MAX_FIELD):
            raise ValueError(f"audit {name} must be 1 to {_MAX_FIELD} characters")
    if holds_address(" ".join((actor, action, target or "", clear))):
        raise ValueError("an email address belongs in the sealed details, not in the clear")

    _lock_chain(session)
    head = current_head(session)
    entry = AuditEntry(
        id=head.id + 1 if head else 1, at=float(now), actor=actor, action=action,
        target=target, details=clear, key_id=key.id if key else None,
        subject_index=subject_index or (key.blind_index if key else None),
        prev_hash=head.hash if head else GENESIS,
    )
    if key is not None and sealed is not None:
        entry.details_sealed = vault.seal(key, _canonical(dict(sealed)).encode(),
                                          _context(entry.id))
    entry.hash = _row_hash(vault, entry)
    session.add(entry)
    session.flush()

    anchor = anchor_for(session)
    if anchor is not None:
        if _agrees(session, anchor, head):
            stage(session, anchor, Head(entry.id, entry.hash))
        else:  # keep the evidence: the anchor does not move past rows cut off the end
            log.warning("audit log: rows recorded in %s are missing or changed; run "
                        "`mailhaven audit verify`", anchor.path)
    return entry


def open_sealed(session: Session, vault: Vault, entry: AuditEntry) -> dict[str, Any] | None:
    """The sealed details; None when there are none or the subject's key has been erased."""
    if entry.details_sealed is None or entry.key_id is None:
        return None
    key = vault.keys(session, [entry.key_id]).get(entry.key_id)
    if key is None:
        return None
    return json.loads(vault.open(key, entry.details_sealed, _context(entry.id)))


def current_head(session: Session) -> Head | None:
    row = session.execute(select(AuditEntry.id, AuditEntry.hash)
                          .order_by(AuditEntry.id.desc()).limit(1)).first()
    return Head(row.id, row.hash) if row else None


def row_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def recent(session: Session, limit: int) -> list[AuditEntry]:
    """The newest `limit` rows, newest first."""
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))


def verify(session: Session, vault: Vault, anchor: HeadAnchor | None = None) -> list[Problem]:
    """Every changed, removed or reordered row, in chain order; [] when the log is intact.
    With `anchor`, rows cut off the end are found too."""
    problems: list[Problem] = []
    try:
        recorded = anchor.read() if anchor else None  # before the rows, which may only grow
    except ValueError as exc:
        problems.append(Problem(None, str(exc)))
        recorded = None
    named = str(anchor.path) if anchor else "the anchor"
    prev = Head(0, GENESIS)
    anchored = False
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)
                           .execution_options(yield_per=1000))
    for entry in rows:
        if entry.prev_hash != prev.hash:
            where = f"after row {prev.id}" if prev.id else "at the start"
            problems.append(Problem(entry.id, f"the chain is broken {where}: a row was "
                                              "removed, inserted or moved"))
        if entry.hash != _row_hash(vault, entry):
            problems.append(Problem(entry.id, "changed: its hash does not match its contents "
                                              "and position"))
        if recorded and entry.id == recorded.id:
            anchored = True
            if entry.hash != recorded.hash:
                problems.append(Problem(entry.id, f"replaced: not the row {named} recorded "
                                                  "as the head"))
        prev = Head(entry.id, entry.hash)
    if recorded and not anchored:
        problems.append(Problem(recorded.id, f"missing, though {named} recorded it as the "
                                             "head: rows were removed from the end"))
    return problems


def _lock_chain(session: Session) -> None:
    """Serialise appenders, so two never read the same head. SQLite's writer transaction
    (BEGIN IMMEDIATE) already does; PostgreSQL takes a lock held until commit. A fork that
    slipped through anyway would fail on the unique prev_hash."""
    one_writer_at_a_time(session, _AUDIT_LOCK)


def _agrees(session: Session, anchor: HeadAnchor, head: Head | None) -> bool:
    """Whether the row the anchor names is still in the chain as it was."""
    try:
        recorded = anchor.read()
    except ValueError:
        return False
    if recorded is None:
        return True
    if head is None or recorded.id > head.id:
        return False
    stored = session.scalar(select(AuditEntry.hash).where(AuditEntry.id == recorded.id))
    return stored == recorded.hash


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _context(entry_id: int) -> str:
    """Binds sealed details to their row: moved to another row, they no longer open."""
    return f"audit_log:{entry_id}"


def _row_hash(vault: Vault, entry: AuditEntry) -> str:
    """HMAC over the predecessor's hash and every field as stored; the sealed details count
    as their ciphertext's digest, so the chain verifies without (and after erasing) the key."""
    sealed = (hashlib.sha256(entry.details_sealed).hexdigest()
              if entry.details_sealed is not None else None)
    fields = [_FORMAT, entry.id, entry.at, entry.actor, entry.action, entry.target,
              entry.subject_index, entry.details, sealed, entry.key_id]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()
    return vault.audit_mac(entry.prev_hash.encode() + b"\n" + encoded)
