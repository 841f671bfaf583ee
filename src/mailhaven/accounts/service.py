"""Create accounts, issue and check API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.storage.base import new_id
from mailhaven.vault import Vault

REGIONS = ("us", "eu")


@dataclass(frozen=True)
class IssuedKey:
    account_id: str
    api_key: str  # shown once


def _digest(api_key: str) -> str:
    # API keys carry 160 random bits, so a fast hash is as strong as a slow one here and
    # keeps authentication off the hot path; passwords (low entropy) get argon2id.
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_account(session: Session, vault: Vault, *, name: str, email: str,
                   region: str = "us", clock: Clock = SYSTEM_CLOCK) -> IssuedKey:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}")
    account = Account(id=new_id(), region=region, created_at=clock.now())
    session.add(account)
    session.flush()
    holder = vault.subjects(session, account.id, [email])[email.strip().lower()]
    account.holder_key_id = holder.id
    account.name_sealed = vault.seal_text(holder, name, "account.name")
    account.email_sealed = vault.seal_text(holder, email, "account.email")
    return IssuedKey(account.id, issue_key(session, account.id, clock=clock))


def issue_key(session: Session, account_id: str, *, description: str = "",
              clock: Clock = SYSTEM_CLOCK) -> str:
    api_key = f"key-{secrets.token_hex(20)}"
    session.add(ApiKey(
        id=new_id(), account_id=account_id, digest=_digest(api_key), hint=api_key[-4:],
        description=description, created_at=clock.now(),
    ))
    return api_key


def revoke_keys(session: Session, account_id: str, *, description: str,
                clock: Clock = SYSTEM_CLOCK) -> None:
    for key in session.scalars(select(ApiKey).where(
        ApiKey.account_id == account_id, ApiKey.description == description,
        ApiKey.revoked_at.is_(None),
    )):
        key.revoked_at = clock.now()


def account_for_key(session: Session, api_key: str) -> str | None:
    """The account id an API key belongs to, or None; the lookup is by digest."""
    row = session.execute(
        select(ApiKey.account_id).where(ApiKey.digest == _digest(api_key),
                                        ApiKey.revoked_at.is_(None))
    ).first()
    return row[0] if row else None
