"""Erasure of a recipient (SPEC N2, N4, issue 4 item 6).

The subject's vault key is destroyed, so every copy of what it sealed (queue entries,
events, suppressions, request details, audit details) becomes unreadable here and in every
backup. Then the rows that would still point at the person go: their events, their queue
entries (queued mail is cancelled), their allowlist entries, their SMTP logins; the bodies
of the messages they received lose their keys once no other copy is waiting; other
recipients' events of those messages lose the address from their To/Cc headers. Bounces,
unsubscribes and complaints stay as keyed index only, so the person is never mailed again.

Every erasure is written to the erasure ledger (a table, and a JSON-lines file beside the
database) so that restoring an older backup can erase the subject again (`reapply`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from email.utils import formataddr, getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account, ApiKey
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
from mailhaven.storage.db import affected
from mailhaven.storage.revocations import Revoked
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.models import VaultKey

LEDGER_FILE = "erasure-ledger.jsonl"
LEGAL_HOLD = "privacy-accountability"  # request records, consents, erasure ledger, audit
HOLD_YEARS = 3
# Ids per IN (...): a subject may have 100,000 copies, more bind parameters than SQLite
# (32,766) or PostgreSQL (65,535) take in one statement.
CHUNK = 1000


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


@dataclass(frozen=True)
class RecipientErasure:
    counts: ErasureCounts
    key_ids: tuple[str, ...]  # destroyed: the subject's and the shredded bodies'
    storage_keys: tuple[str, ...]  # the messages they received


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
                                                 summary.storage_keys, now))
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
                                                 summary.key_ids, (), now))
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
    backup runs it from the ledger). Data the subject got after `at` is not touched."""
    subject_keys = set(key_ids) | set(session.scalars(select(VaultKey.id).where(
        VaultKey.account_id == account_id, VaultKey.purpose == "subject",
        VaultKey.blind_index == index, VaultKey.created_at <= at)))
    copies = session.execute(select(Delivery.id, Delivery.message_id, Delivery.status).where(
        Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys))).all()
    received = inbound.erase(session, account_id, index)  # mail they sent or received here
    erase_for_messages(session, account_id, received)  # and its route POSTs
    touched = sorted({m for _, m, _ in copies} | set(storage_keys) | set(received))
    cancelled = sum(1 for *_, status in copies if status == QUEUED)
    session.execute(delete(Delivery).where(
        Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys))
        .execution_options(synchronize_session=False))
    events = affected(session.execute(delete(Event).where(
        Event.account_id == account_id, Event.recipient_index == index,
        Event.timestamp <= at).execution_options(synchronize_session=False)))
    _redact_other_events(session, vault, account_id, index, touched)
    content_keys = _shred_bodies(session, account_id, touched)
    _redact_kept_bodies(session, vault, account_id, index, touched)
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
    destroyed = sorted(subject_keys | set(content_keys))
    for chunk in _chunks(destroyed):
        session.execute(delete(VaultKey).where(VaultKey.id.in_(chunk))
                        .execution_options(synchronize_session=False))
    for key_id in destroyed:
        vault.forget(key_id)
    return RecipientErasure(ErasureCounts(events, cancelled, len(copies), len(touched)),
                            tuple(destroyed), tuple(touched))


def _shred_bodies(session: Session, account_id: str, storage_keys: list[str]) -> list[str]:
    """Destroy the content keys of these messages, except where another recipient's copy is
    still waiting (that body goes with retention, 3 days after its final state)."""
    if not storage_keys:
        return []
    waiting = {key for chunk in _chunks(storage_keys) for key in session.scalars(
        select(Delivery.message_id).where(Delivery.message_id.in_(chunk),
                                          Delivery.status == QUEUED))}
    done = [k for k in storage_keys if k not in waiting]
    keys = []
    for chunk in _chunks(done):
        # By id alone, the account checked here: given account_id too, SQLite (no
        # statistics) reads the account's every message through its index instead.
        keys += [key for owner, key in session.execute(select(
            Message.account_id, Message.content_key_id).where(Message.id.in_(chunk)))
            if owner == account_id]
        # The key's ON DELETE SET NULL would write each message a second time.
        session.execute(update(Message).where(Message.id.in_(chunk))
                        .values(content_sealed=None, content_key_id=None)
                        .execution_options(synchronize_session=False))
    return [k for k in keys if k]


def _redact_other_events(session: Session, vault: Vault, account_id: str, index: str,
                         storage_keys: list[str]) -> None:
    """Other recipients' events repeat the message's To/Cc headers (a received message's
    From and envelope sender too): take the erased address out of them (found by its blind
    index, so this works without knowing it)."""
    if not storage_keys:
        return
    rows = [row for chunk in _chunks(storage_keys) for row in session.scalars(select(Event).where(
        Event.account_id == account_id, Event.storage_key.in_(chunk)))]
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

    def row(self) -> Erasure:
        return Erasure(account_id=self.account_id, subject_index=self.subject_index,
                       key_ids=json.dumps(list(self.key_ids)),
                       storage_keys=json.dumps(list(self.storage_keys)), at=self.at)


def _write_ledger(session: Session, data_dir: Path, entry: LedgerEntry) -> None:
    """In the table and in the file beside the database: a backup restored over a lost
    database is still corrected by the file."""
    session.add(entry.row())
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
    """Erase again everyone in `entries` (after a restore), and put the ledger rows back."""
    present = {entry.identity for entry in ledger_table(session)}
    for entry in entries:
        if entry.deleted_account:
            erase_account_data(session, vault, entry.account_id, at=entry.at)
        else:
            erase_index(session, vault, entry.account_id, entry.subject_index,
                        key_ids=entry.key_ids, at=entry.at, storage_keys=entry.storage_keys)
        if entry.identity not in present:
            session.add(entry.row())
    return len(entries)
