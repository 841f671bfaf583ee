"""Access and portability exports (SPEC N3, N4): an account holder's, or one recipient's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.disclosures.models import Disclosure, DisclosureSubject
from mailhaven.errors import NotFound
from mailhaven.events.models import Event
from mailhaven.exports import categories
from mailhaven.exports.registry import (
    ACCOUNT_HOLDER,
    RECIPIENT,
    Recipient,
    Scope,
    categories_for,
)
from mailhaven.exports.writer import Progress, write_zip
from mailhaven.storage.db import Database
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

RECIPIENT_NOT_FOUND = "Recipient not found"


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: dict[str, int]  # per category


@contextmanager
def _register(db: Database, directory: Database | None) -> Iterator[Session | None]:
    """A session of the main database (the sub-processor register) when it is not `db`."""
    if directory is None or directory is db:
        yield None
        return
    with directory.sessions() as session:
        yield session


def export_account(db: Database, vault: Vault, account_id: str, path: Path | str,
                   progress: Progress | None = None, *, hostname: str | None = None,
                   clock: Clock = SYSTEM_CLOCK, directory: Database | None = None) -> Exported:
    """Everything of the account, for its holder. `hostname` (the MTA's, as in Settings)
    completes the domains' DNS records; without it only their DKIM records are listed.
    `directory`: the main database, when it is not `db` (the sub-processor register)."""
    with db.snapshot() as session, _register(db, directory) as register:
        if session.get(Account, account_id) is None:
            raise NotFound("Account not found")
        scope = Scope(session, vault, account_id, hostname=hostname, register=register,
                      now=clock.now())
        subject = {"kind": ACCOUNT_HOLDER, "account_id": account_id}
        return _write(scope, subject, Path(path), progress, clock)


def export_recipient(db: Database, vault: Vault, account_id: str, address: str,
                     path: Path | str, progress: Progress | None = None, *,
                     clock: Clock = SYSTEM_CLOCK, directory: Database | None = None) -> Exported:
    """What the account holds about one of its recipients, across its domains (the
    processor's export); NotFound when it holds nothing."""
    with db.snapshot() as session, _register(db, directory) as register:
        recipient = find_recipient(session, vault, account_id, address)
        if recipient is None:
            raise NotFound(RECIPIENT_NOT_FOUND)
        scope = Scope(session, vault, account_id, recipient=recipient, register=register,
                      now=clock.now())
        subject = {"kind": RECIPIENT, "account_id": account_id, "address": recipient.address}
        return _write(scope, subject, Path(path), progress, clock)


def find_recipient(session: Session, vault: Vault, account_id: str,
                   address: str) -> Recipient | None:
    """The recipient if the account holds anything about them: their subject key, or rows
    under their blind index (which outlive an erased key), a disclosure's among them."""
    index = vault.blind_index(account_id, address)
    key = vault.find_subject(session, account_id, address)
    if key is None and not session.scalar(select(
            exists().where(Event.account_id == account_id, Event.recipient_index == index)
            | exists().where(Suppression.account_id == account_id,
                             Suppression.value_index == index)
            | exists().where(DisclosureSubject.subject_index == index,
                             DisclosureSubject.disclosure_id == Disclosure.id,
                             Disclosure.account_id == account_id))):
        return None
    return Recipient(normalize_address(address), index, key)


def _write(scope: Scope, subject: dict, path: Path, progress: Progress | None,
           clock: Clock) -> Exported:
    rows = write_zip(path, scope=scope, subject=subject,
                     generated_at=categories.iso(clock.now()) or "",
                     categories=categories_for(subject["kind"]), progress=progress)
    return Exported(path, rows)
