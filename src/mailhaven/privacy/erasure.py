"""Erasure of a recipient (SPEC N2, N4, issue 4 item 6).

The subject's vault key is destroyed, so every copy of what it sealed (queue entries,
events, suppressions, request details, audit details) becomes unreadable here and in every
backup, and so are the bodies of the messages they received (their content keys destroyed
once no other copy is waiting); queued mail is cancelled; other recipients' events of
those messages lose the address from their To/Cc headers; allowlist entries and SMTP logins
go. All of that in the request (issue 17). The rows that still point at the person, now
unreadable — their events, their queue entries, the emptied bodies, the destroyed keys' rows
— are deleted in the request when they are few (INLINE_ROWS), else by the background job
(`run_pending`, `privacy.runner.ErasureDeleter`) in batches of BATCH rows per transaction.
Bounces, unsubscribes and complaints stay as keyed index only, so the person is never
mailed again.

Every erasure is written to the erasure ledger (a table, and a JSON-lines file beside the
database) so that restoring an older backup can erase the subject again (`reapply`); the
table's `rows_deleted_at` stays NULL until the rows are deleted, which is what the job
looks for (a restore re-opens it for every entry it re-applies).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from email.utils import formataddr, getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, case, delete, exists, func, select, update
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.clock import Clock
from mailhaven.controls.service import holder_index
from mailhaven.credentials.models import SmtpCredential
from mailhaven.delivery.models import CANCELLED, QUEUED, Delivery
from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.inbound import service as inbound
from mailhaven.inbound.posts import erase_for_messages
from mailhaven.lists.service import erase_memberships
from mailhaven.messages import content
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.privacy.models import Erasure
from mailhaven.privacy.requests import add_months
from mailhaven.storage import revocations
from mailhaven.storage.db import Database, affected
from mailhaven.storage.revocations import Revoked
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.models import DESTROYED, ERASED, VaultKey

LEDGER_FILE = "erasure-ledger.jsonl"
LEGAL_HOLD = "privacy-accountability"  # request records, consents, erasure ledger, audit
HOLD_YEARS = 3
# Ids per IN (...): a subject may have 100,000 copies, more bind parameters than SQLite
# (32,766) or PostgreSQL (65,535) take in one statement.
CHUNK = 1000
# Rows of each kind per transaction of the background deletion: locks stay short.
BATCH = 5000
# A subject with at most this many events and copies has them deleted in the request;
# more, and the background job deletes them (they are unreadable from the commit on).
INLINE_ROWS = 5000
DONE, SCHEDULED = "done", "scheduled"


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


@dataclass(frozen=True)
class ErasureCounts:
    """What a recipient's erasure took away (in the completion record, in this order)."""

    events: int
    cancelled: int  # queued copies that will not be sent
    copies: int
    messages: int
    # DONE: the events and copies are deleted and the bodies emptied; SCHEDULED: they are
    # unreadable (their keys destroyed) and the background job deletes them shortly
    # (`rows_deleted_at` in the erasure ledger says when it has)
    deletion: str = DONE


@dataclass(frozen=True)
class RecipientErasure:
    counts: ErasureCounts
    # for the ledger: the subject's keys, and what a re-run would not find again through
    # their copies (received mail, its bodies' keys; keys named by the ledger)
    key_ids: tuple[str, ...]
    storage_keys: tuple[str, ...]
    destroyed: int  # keys destroyed: theirs and their messages' content keys


@dataclass(frozen=True)
class AccountErasure:
    domains: int
    key_ids: tuple[str, ...]
    cancelled: int = 0  # queued mail cancelled (by account deletion; not by a re-run)


def erase_recipient(session: Session, vault: Vault, account_id: str, address: str, *,
                    now: float, data_dir: Path) -> RecipientErasure:
    """Erase everything the account holds about `address`; a summary of what went."""
    index = vault.blind_index(account_id, address)
    key = vault.find_subject(session, account_id, address)
    summary = erase_index(session, vault, account_id, index,
                          key_ids=[key.id] if key else [], at=now)
    _write_ledger(session, data_dir, LedgerEntry(account_id, index, summary.key_ids,
                                                 summary.storage_keys, now),
                  rows_deleted_at=now if summary.counts.deletion == DONE else None)
    return summary


def erase_account(session: Session, vault: Vault, account_id: str, *, now: float,
                  data_dir: Path) -> AccountErasure:
    """Account deletion's erasure: queued mail cancelled (and counted), then the account's
    data erased (`erase_account_data`) and the erasure written to the ledger."""
    cancelled = affected(session.execute(update(Delivery).where(
        Delivery.account_id == account_id, Delivery.status == QUEUED)
        .values(status=CANCELLED, lease_owner=None, updated_at=now)
        .execution_options(synchronize_session=False)))
    summary = erase_account_data(session, vault, account_id, at=now)
    _write_ledger(session, data_dir, LedgerEntry(account_id, holder_index(account_id),
                                                 summary.key_ids, (), now), rows_deleted_at=now)
    return replace(summary, cancelled=cancelled)


def erase_account_data(session: Session, vault: Vault, account_id: str, *,
                       at: float) -> AccountErasure:
    """Every vault key of the account created up to `at`, its domains (with their events,
    suppressions, webhooks and counters) and its queue; its API keys revoked and the account
    closed under the legal hold. Safe to run again after a restore, where it keeps a
    restored account deleted (its keys would otherwise work again)."""
    key_ids = tuple(session.scalars(select(VaultKey.id).where(
        VaultKey.account_id == account_id, VaultKey.created_at <= at)))
    domains = affected(session.execute(delete(Domain).where(Domain.account_id == account_id)
                                       .execution_options(synchronize_session=False)))
    session.execute(delete(Event).where(Event.account_id == account_id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Delivery).where(Delivery.account_id == account_id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(VaultKey).where(VaultKey.id.in_(key_ids))
                    .execution_options(synchronize_session=False))
    for key_id in key_ids:
        vault.forget(key_id)
    session.execute(update(ApiKey).where(ApiKey.account_id == account_id,
                                         ApiKey.revoked_at.is_(None))
                    .values(revoked_at=at).execution_options(synchronize_session=False))
    revocations.announce(session, Revoked("account", account_id))  # its keys and domains
    account = session.get(Account, account_id)
    if account is not None:
        account.name_sealed = account.email_sealed = None
        account.holder_key_id = None
        account.deleted_at = account.deleted_at or at
        account.legal_hold = LEGAL_HOLD
        account.hold_until = add_months(at, 12 * HOLD_YEARS)
    return AccountErasure(domains, key_ids)


def erase_index(session: Session, vault: Vault, account_id: str, index: str, *,
                key_ids: Iterable[str], at: float,
                storage_keys: Iterable[str] = ()) -> RecipientErasure:
    """Erase the subject with this blind index as of `at`; safe to run again (a restored
    backup runs it from the ledger). Data the subject got after `at` is not touched.

    What makes them unreadable is done here, in the caller's transaction: their keys and
    their messages' content keys destroyed (`Vault.destroy`), queued copies cancelled,
    their address taken out of what others keep. Their rows (events, copies, bodies, the
    destroyed keys' rows) are deleted here too when there are at most INLINE_ROWS of them,
    else by the background job (`delete_rows`, in batches): unreadable meanwhile."""
    subject_keys = sorted(session.scalars(select(VaultKey.id).where(
        VaultKey.account_id == account_id, VaultKey.purpose == "subject",
        VaultKey.blind_index == index, VaultKey.created_at <= at)))
    # Their copies' messages, as a subquery: 100,000 ids are neither read back nor sent
    # back as parameters. (A re-run finds no copies under keys destroyed already:
    # `delete_rows` deletes those.)
    theirs = select(Delivery.message_id).where(Delivery.account_id == account_id,
                                               Delivery.subject_key_id.in_(subject_keys))
    copies, messages, cancelled = session.execute(select(
        func.count(), func.count(Delivery.message_id.distinct()),
        func.coalesce(func.sum(case((Delivery.status == QUEUED, 1), else_=0)), 0)).where(
        Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys))).one()
    received = inbound.erase(session, account_id, index)  # mail they sent or received here
    erase_for_messages(session, account_id, received)  # and its route POSTs
    # The messages named otherwise (received mail; a re-run's ledger), not among their
    # copies': in chunks.
    named_messages = sorted(set(storage_keys) | set(received))
    more = sorted(set(named_messages) - {key for chunk in _chunks(named_messages)
                                         for key in session.scalars(theirs.where(
                                             Delivery.message_id.in_(chunk)))})
    if cancelled:  # not sent: a worker holding one settles nothing (its lease is gone)
        session.execute(update(Delivery).where(
            Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys),
            Delivery.status == QUEUED)
            .values(status=CANCELLED, lease_owner=None, updated_at=at)
            .execution_options(synchronize_session=False))
    events = session.scalar(select(func.count()).select_from(Event).where(
        *_their_events(account_id, index, at))) or 0
    _redact_other_events(session, vault, account_id, index, theirs, more)
    waiting = _waiting(session, theirs, more)
    _redact_kept_bodies(session, vault, account_id, index, sorted(waiting))
    session.execute(delete(Suppression).where(
        Suppression.account_id == account_id, Suppression.kind == "whitelists",
        Suppression.value_index == index).execution_options(synchronize_session=False))
    # A login sealed under the erased key would still log in (and keep its index).
    session.execute(delete(SmtpCredential).where(
        SmtpCredential.account_id == account_id, SmtpCredential.login_index == index)
        .execution_options(synchronize_session=False))
    # Their memberships of mailing lists (the key's ON DELETE CASCADE would too; by index,
    # a membership under a key made after `at` goes as well: the address is the subject).
    erase_memberships(session, account_id, index)
    # The content keys of the messages they received (no other copy waiting): destroyed in
    # one statement for their copies' messages (by id alone: given account_id too, SQLite,
    # which has no statistics, reads the account's every message through its index
    # instead; their copies are the account's), in chunks for the others. (Their ids are
    # not kept: a re-run finds them again as this did. A process's cache of unwrapped keys
    # may keep one until it is pushed out: `Vault.keys` no longer finds its row.)
    destroyed = vault.destroy(session, select(Message.content_key_id).where(
        Message.id.in_(theirs), Message.id.not_in(sorted(waiting))))
    named = set(key_ids)
    for chunk in _chunks([k for k in more if k not in waiting]):
        found = list(session.scalars(select(Message.content_key_id).where(
            Message.id.in_(chunk), Message.account_id == account_id,
            Message.content_key_id.is_not(None))))
        destroyed += vault.destroy(session, found)
        named.update(found)
    named.update(subject_keys)
    destroyed += vault.destroy(session, named)
    done = (events + copies <= INLINE_ROWS
            and delete_rows(session, account_id, index, at, messages=more,
                            limit=INLINE_ROWS).complete)
    return RecipientErasure(ErasureCounts(events, cancelled, copies, messages + len(more),
                                          DONE if done else SCHEDULED),
                            tuple(sorted(named)), tuple(more), destroyed)


def _their_events(account_id: str, index: str, at: float) -> tuple[ColumnElement[bool], ...]:
    return (Event.recipient_index == index, Event.account_id == account_id,
            Event.timestamp <= at)


@dataclass(frozen=True)
class Deleted:
    rows: int  # deleted (or, for bodies, emptied) by this batch
    complete: bool  # nothing left of the erasure's (and of the account's destroyed keys')


def delete_rows(session: Session, account_id: str, index: str, at: float, *,
                messages: Sequence[str] = (), limit: int = BATCH) -> Deleted:
    """One batch of an erasure's deletion: at most `limit` rows of each kind. The
    account's erased subjects' copies, with the bodies of their messages whose content key
    was destroyed (emptied, and the key's row deleted), the bodies of `messages` too (those
    the erasure named otherwise: its ledger's storage keys); the subject's events; then the
    rows of the account's erased subject keys nothing names any more (deleting one still
    named would write each row naming it, through ON DELETE SET NULL)."""
    erased = select(VaultKey.id).where(VaultKey.account_id == account_id,
                                       VaultKey.purpose == ERASED)
    # A destroyed content key is marked in no index (`Vault.destroy`): it is found through
    # its message, and its message through a copy that leads to it (or the ledger), so a
    # batch of copies takes their bodies with it. (Messages by id, their keys by id, and the
    # mark read, not filtered on: the planner, which has seen no key destroyed, would start
    # from a scan of vault_keys.) ERASED content keys: destroyed before migration 0043.
    def shredded(*where: ColumnElement[bool]) -> list[str]:
        rows = session.execute(select(Message.content_key_id, VaultKey.wrapped_key).join(
            VaultKey, VaultKey.id == Message.content_key_id).where(*where))
        return [key for key, wrapped in rows if wrapped == DESTROYED]

    batch: list[tuple[str, str]] = [(row.id, row.message_id) for row in session.execute(
        select(Delivery.id, Delivery.message_id).where(Delivery.subject_key_id.in_(erased))
        .limit(limit))]
    theirs = {key for chunk in _chunks(sorted({m for _, m in batch}))
              for key in shredded(Message.id.in_(chunk))}
    named = list(session.scalars(select(Message.content_key_id).where(
        Message.content_key_id.in_(erased)).limit(limit)))
    for chunk in _chunks(messages):
        if len(named) < limit:
            named += shredded(Message.id.in_(chunk))[:limit - len(named)]
    content = sorted(theirs | set(named))
    bodies = sum(affected(session.execute(update(Message).where(
        Message.content_key_id.in_(chunk)).values(content_sealed=None, content_key_id=None)
        .execution_options(synchronize_session=False))) for chunk in _chunks(content))
    copies = sum(affected(session.execute(delete(Delivery).where(Delivery.id.in_(chunk))
                                          .execution_options(synchronize_session=False)))
                 for chunk in _chunks([i for i, _ in batch]))
    events = affected(session.execute(delete(Event).where(Event.id.in_(
        select(Event.id).where(*_their_events(account_id, index, at)).limit(limit)
        .scalar_subquery())).execution_options(synchronize_session=False)))
    unnamed = (VaultKey.wrapped_key == DESTROYED,
               ~exists().where(Delivery.subject_key_id == VaultKey.id),
               ~exists().where(Event.key_id == VaultKey.id),
               ~exists().where(Message.content_key_id == VaultKey.id))
    content_keys = sum(affected(session.execute(delete(VaultKey).where(
        VaultKey.id.in_(chunk), *unnamed).execution_options(synchronize_session=False)))
        for chunk in _chunks(content))
    keys = affected(session.execute(delete(VaultKey).where(VaultKey.id.in_(
        select(VaultKey.id).where(VaultKey.account_id == account_id,
                                  VaultKey.purpose == ERASED, *unnamed)
        .limit(limit).scalar_subquery())).execution_options(synchronize_session=False)))
    done = (copies, events, len(named), keys)
    return Deleted(bodies + content_keys + copies + events + keys,
                   all(n < limit for n in done))


def _waiting(session: Session, theirs: Select[Any], more: list[str]) -> set[str]:
    """Those of these messages another recipient's copy is still waiting for."""
    waiting = set(session.scalars(select(Delivery.message_id).where(
        Delivery.message_id.in_(theirs), Delivery.status == QUEUED)))
    return waiting | {key for chunk in _chunks(more) for key in session.scalars(
        select(Delivery.message_id).where(Delivery.message_id.in_(chunk),
                                          Delivery.status == QUEUED))}


def _redact_other_events(session: Session, vault: Vault, account_id: str, index: str,
                         theirs: Select[Any], more: list[str]) -> None:
    """Other recipients' events repeat the message's To/Cc headers (a received message's
    From and envelope sender too): take the erased address out of them (found by its blind
    index, so this works without knowing it)."""
    others = (Event.account_id == account_id,
              Event.recipient_index.is_distinct_from(index))  # theirs go whole
    # Among their copies' messages, only those with another copy have events of another
    # recipient (every recipient of a sent message has a copy, kept as long as its events;
    # an erased one's events went with it): found off the index of copies by message alone.
    shared = (select(Delivery.message_id).where(Delivery.message_id.in_(theirs))
              .group_by(Delivery.message_id).having(func.count() > 1))
    rows = list(session.scalars(select(Event).where(Event.storage_key.in_(shared), *others)))
    rows += [row for chunk in _chunks(more) for row in session.scalars(select(Event).where(
        Event.storage_key.in_(chunk), *others))]
    keys = vault.keys(session, (r.key_id for r in rows))
    for row in rows:
        key = keys.get(row.key_id or "")
        if key is None:
            continue
        doc = json.loads(vault.open(key, row.payload, row.event_id))
        headers = doc.get("message", {}).get("headers", {})
        changed = False
        for name in ("to", "cc", "from"):
            if not headers.get(name):
                continue
            redacted = _without(vault, account_id, index, headers[name])
            if redacted != headers[name]:
                headers[name], changed = redacted, True
        envelope = doc.get("envelope") or {}
        if envelope.get("sender") and _without(vault, account_id, index,
                                               envelope["sender"]) != envelope["sender"]:
            envelope["sender"], changed = "", True
        if changed:
            row.payload = vault.seal(key, json.dumps(doc).encode(), row.event_id)


def _without(vault: Vault, account_id: str, index: str, value: str) -> str:
    """An address field's `value` without the erased address; `value` itself if it lacks it."""
    pairs = getaddresses([value])
    kept = [(n, a) for n, a in pairs if not a or vault.blind_index(account_id, a) != index]
    return value if len(kept) == len(pairs) else ", ".join(formataddr(p) for p in kept)


def _redact_kept_bodies(session: Session, vault: Vault, account_id: str, index: str,
                        storage_keys: list[str]) -> None:
    """A body kept for another recipient's queued copy names the erased address in its To
    or Cc too: take it out there (the copy still to go, a resend and the stored message
    would show it otherwise), and seal the body again."""
    rows = [row for chunk in _chunks(storage_keys) for row in session.scalars(
        select(Message).where(Message.id.in_(chunk), Message.content_sealed.is_not(None)))
        if row.account_id == account_id]
    keys = vault.keys(session, (r.content_key_id for r in rows))
    for row in rows:
        key = keys.get(row.content_key_id or "")
        if key is None or row.content_sealed is None:
            continue
        context = f"message:{row.id}"
        doc = Document.load(vault.open(key, row.content_sealed, context))
        redacted = replace(
            doc, to=[v for v in (_without(vault, account_id, index, t) for t in doc.to) if v],
            cc=[v for v in (_without(vault, account_id, index, c) for c in doc.cc) if v],
            mime=None if doc.mime is None else base64.b64encode(content.without_mailboxes(
                doc.mime_bytes,
                lambda a: vault.blind_index(account_id, a) == index)).decode())
        if redacted != doc:
            row.content_sealed = vault.seal(key, redacted.dump(), context)


@dataclass(frozen=True)
class LedgerEntry:
    """One erasure in the ledger: key ids and a keyed hash, nothing readable."""

    account_id: str
    subject_index: str  # a recipient's blind index, or `account:<id>` for a deleted account
    key_ids: tuple[str, ...]
    storage_keys: tuple[str, ...]
    at: float

    @property
    def identity(self) -> tuple[str, str, float]:
        return self.account_id, self.subject_index, self.at

    @property
    def deleted_account(self) -> bool:
        return self.subject_index.startswith("account:")

    @classmethod
    def of(cls, row: Erasure) -> LedgerEntry:
        return cls(row.account_id, row.subject_index, tuple(json.loads(row.key_ids)),
                   tuple(json.loads(row.storage_keys)), row.at)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> LedgerEntry:
        return cls(entry["account_id"], entry["subject_index"], tuple(entry["key_ids"]),
                   tuple(entry["storage_keys"]), entry["at"])

    def as_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "subject_index": self.subject_index,
                "key_ids": list(self.key_ids), "storage_keys": list(self.storage_keys),
                "at": self.at}

    def row(self, rows_deleted_at: float | None = None) -> Erasure:
        return Erasure(account_id=self.account_id, subject_index=self.subject_index,
                       key_ids=json.dumps(list(self.key_ids)),
                       storage_keys=json.dumps(list(self.storage_keys)), at=self.at,
                       rows_deleted_at=rows_deleted_at)


def _write_ledger(session: Session, data_dir: Path, entry: LedgerEntry, *,
                  rows_deleted_at: float | None) -> None:
    """In the table and in the file beside the database: a backup restored over a lost
    database is still corrected by the file. `rows_deleted_at` None: the background job
    has rows to delete."""
    session.add(entry.row(rows_deleted_at))
    append_ledger_file(data_dir, [entry])


def append_ledger_file(data_dir: Path, entries: Iterable[LedgerEntry]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LEDGER_FILE).open("a", encoding="utf-8") as ledger:
        ledger.writelines(json.dumps(entry.as_json()) + "\n" for entry in entries)


def ledger_file(data_dir: Path) -> list[LedgerEntry]:
    path = data_dir / LEDGER_FILE
    if not path.exists():
        return []
    return [LedgerEntry.from_json(json.loads(line))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ledger_table(session: Session) -> list[LedgerEntry]:
    return [LedgerEntry.of(row) for row in session.scalars(select(Erasure))]


def ledger_entries(session: Session, data_dir: Path) -> list[LedgerEntry]:
    """Every erasure known: the table's and the file's (a restore may have lost either)."""
    seen = {entry.identity: entry for entry in ledger_table(session)}
    for entry in ledger_file(data_dir):
        seen.setdefault(entry.identity, entry)
    return sorted(seen.values(), key=lambda e: e.at)


def complete_ledger_file(data_dir: Path, entries: Iterable[LedgerEntry]) -> None:
    """Write to the ledger file the erasures it lacks (the backup's own, after a restore
    onto a new machine), so the file alone can correct the next restore."""
    known = {entry.identity for entry in ledger_file(data_dir)}
    missing = [e for e in sorted(entries, key=lambda e: e.at) if e.identity not in known]
    if missing:
        append_ledger_file(data_dir, missing)


def reapply(session: Session, vault: Vault, entries: list[LedgerEntry]) -> int:
    """Erase again everyone in `entries` (after a restore), and put the ledger rows back:
    their keys destroyed at once, their rows deleted here when few, else left to the
    background job (the entry's `rows_deleted_at` NULL again)."""
    rows = {LedgerEntry.of(row).identity: row for row in session.scalars(select(Erasure))}
    for entry in entries:
        done: float | None = entry.at
        if entry.deleted_account:
            erase_account_data(session, vault, entry.account_id, at=entry.at)
        else:
            erased = erase_index(session, vault, entry.account_id, entry.subject_index,
                                 key_ids=entry.key_ids, at=entry.at,
                                 storage_keys=entry.storage_keys)
            done = entry.at if erased.counts.deletion == DONE else None
        row = rows.get(entry.identity)
        if row is None:
            session.add(entry.row(done))
        else:
            row.rows_deleted_at = done
    return len(entries)


def pending(session: Session) -> list[Erasure]:
    """The erasures whose rows the background job has still to delete, oldest first."""
    return list(session.scalars(select(Erasure).where(Erasure.rows_deleted_at.is_(None))
                                .order_by(Erasure.id)))


def run_pending(db: Database, clock: Clock, *, batch: int = BATCH,
                stopping: Callable[[], bool] = lambda: False) -> int:
    """The background deletion: every pending erasure's rows, `batch` of each kind per
    transaction, until none is left or `stopping()`; how many rows went. A process stopped
    (or killed) between batches loses nothing: the entry stays pending, the next run goes
    on where this one was."""
    with db.sessions() as session:
        work = [(row.id, row.account_id, row.subject_index, row.at,
                 json.loads(row.storage_keys)) for row in pending(session)]
    total = 0
    for entry_id, account_id, index, at, messages in work:
        while not stopping():
            with db.transaction() as session:
                deleted = delete_rows(session, account_id, index, at, messages=messages,
                                      limit=batch)
                total += deleted.rows
                if deleted.complete:
                    session.execute(update(Erasure).where(Erasure.id == entry_id)
                                    .values(rows_deleted_at=clock.now()))
                    break
    return total
