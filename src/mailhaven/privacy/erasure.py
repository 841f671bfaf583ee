"""Erasure of a recipient (SPEC N2, N4, issue 4 item 6).

The subject's vault key is destroyed, so every copy of what it sealed (queue entries,
events, suppressions, request details, audit details) becomes unreadable here and in every
backup. Then the rows that would still point at the person go: their events, their queue
entries (queued mail is cancelled), their allowlist entries; the bodies of the messages
they received lose their keys once no other copy is waiting; other recipients' events of
those messages lose the address from their To/Cc headers. Bounces, unsubscribes and
complaints stay as keyed index only, so the person is never mailed again.

Every erasure is written to the erasure ledger (a table, and a JSON-lines file beside the
database) so that restoring an older backup can erase the subject again (`reapply`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from email.utils import formataddr, getaddresses
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailhaven.delivery.models import QUEUED, Delivery
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.privacy.models import Erasure
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.models import VaultKey

LEDGER_FILE = "erasure-ledger.jsonl"
# Ids per IN (...): a subject may have 100,000 copies, more bind parameters than SQLite
# (32,766) or PostgreSQL (65,535) take in one statement.
CHUNK = 1000


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def erase_recipient(session: Session, vault: Vault, account_id: str, address: str, *,
                    now: float, data_dir: Path) -> dict:
    """Erase everything the account holds about `address`; a summary of what went."""
    index = vault.blind_index(account_id, address)
    key = vault.find_subject(session, account_id, address)
    summary = erase_index(session, vault, account_id, index,
                          key_ids=[key.id] if key else [], at=now)
    entry = Erasure(account_id=account_id, subject_index=index,
                    key_ids=json.dumps(summary["key_ids"]),
                    storage_keys=json.dumps(summary["storage_keys"]), at=now)
    session.add(entry)
    _append_ledger(data_dir, entry)
    return summary


def erase_index(session: Session, vault: Vault, account_id: str, index: str, *,
                key_ids: list[str], at: float, storage_keys: list[str] = ()) -> dict:
    """Erase the subject with this blind index as of `at`; safe to run again (a restored
    backup runs it from the ledger). Data the subject got after `at` is not touched."""
    subject_keys = set(key_ids) | set(session.scalars(select(VaultKey.id).where(
        VaultKey.account_id == account_id, VaultKey.purpose == "subject",
        VaultKey.blind_index == index, VaultKey.created_at <= at)))
    copies = session.execute(select(Delivery.id, Delivery.message_id, Delivery.status).where(
        Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys))).all()
    touched = sorted({m for _, m, _ in copies} | set(storage_keys))
    cancelled = sum(1 for *_, status in copies if status == QUEUED)
    session.execute(delete(Delivery).where(
        Delivery.account_id == account_id, Delivery.subject_key_id.in_(subject_keys))
        .execution_options(synchronize_session=False))
    events = session.execute(delete(Event).where(
        Event.account_id == account_id, Event.recipient_index == index,
        Event.timestamp <= at).execution_options(synchronize_session=False)).rowcount
    _redact_other_events(session, vault, account_id, index, touched)
    content_keys = _shred_bodies(session, account_id, touched)
    session.execute(delete(Suppression).where(
        Suppression.account_id == account_id, Suppression.kind == "whitelists",
        Suppression.value_index == index).execution_options(synchronize_session=False))
    destroyed = sorted(subject_keys | set(content_keys))
    for chunk in _chunks(destroyed):
        session.execute(delete(VaultKey).where(VaultKey.id.in_(chunk))
                        .execution_options(synchronize_session=False))
    for key_id in destroyed:
        vault.forget(key_id)
    return {"events": events, "cancelled": cancelled, "copies": len(copies),
            "messages": len(touched), "key_ids": destroyed, "storage_keys": touched}


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
    """Other recipients' events repeat the message's To/Cc headers: take the erased address
    out of them (found by its blind index, so this works without knowing it)."""
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
        for name in ("to", "cc"):
            if not headers.get(name):
                continue
            kept = [(n, a) for n, a in getaddresses([headers[name]])
                    if not a or vault.blind_index(account_id, a) != index]
            redacted = ", ".join(formataddr(p) for p in kept)
            if redacted != headers[name]:
                headers[name], changed = redacted, True
        if changed:
            row.payload = vault.seal(key, json.dumps(doc).encode(), row.event_id)


def _append_ledger(data_dir: Path, entry: Erasure) -> None:
    """The ledger's copy outside the database: a backup restored over a lost database is
    still corrected by it. It holds key ids and a keyed hash, nothing readable."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LEDGER_FILE).open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(ledger_json(entry)) + "\n")


def ledger_json(entry: Erasure) -> dict:
    return {"account_id": entry.account_id, "subject_index": entry.subject_index,
            "key_ids": json.loads(entry.key_ids), "storage_keys": json.loads(entry.storage_keys),
            "at": entry.at}


def ledger_entries(session: Session, data_dir: Path) -> list[dict]:
    """Every erasure known: the table's and the file's (a restore may have lost either)."""
    seen: dict[tuple, dict] = {}
    for row in session.scalars(select(Erasure)):
        entry = ledger_json(row)
        seen[(entry["account_id"], entry["subject_index"], entry["at"])] = entry
    path = data_dir / LEDGER_FILE
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                seen.setdefault((entry["account_id"], entry["subject_index"], entry["at"]),
                                entry)
    return sorted(seen.values(), key=lambda e: e["at"])


def reapply(session: Session, vault: Vault, entries: list[dict]) -> int:
    """Erase again everyone in `entries` (after a restore), and put the ledger rows back."""
    present = {(e.account_id, e.subject_index, e.at) for e in session.scalars(select(Erasure))}
    from mailhaven.privacy.service import erase_account_data

    for entry in entries:
        if entry["subject_index"].startswith("account:"):  # a deleted account
            erase_account_data(session, vault, entry["account_id"], at=entry["at"])
        else:
            erase_index(session, vault, entry["account_id"], entry["subject_index"],
                        key_ids=entry["key_ids"], at=entry["at"],
                        storage_keys=entry["storage_keys"])
        if (entry["account_id"], entry["subject_index"], entry["at"]) not in present:
            session.add(Erasure(account_id=entry["account_id"],
                                subject_index=entry["subject_index"],
                                key_ids=json.dumps(entry["key_ids"]),
                                storage_keys=json.dumps(entry["storage_keys"]),
                                at=entry["at"]))
    return len(entries)
