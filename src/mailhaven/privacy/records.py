"""Completion records: what an erasure, an account deletion or an answered request did,
signed with the account's signing key (the one webhooks are signed with) so the customer
can verify it."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from mailhaven.privacy.erasure import ErasureCounts
from mailhaven.vault import Vault
from mailhaven.webhooks.service import signing_key

SIGNED_WITH = ("HMAC-SHA256 over the record's canonical JSON (sorted keys, no spaces) with "
               "the account's http_signing_key")
KEPT_UNDER_HOLD = ("privacy requests", "consent ledger", "erasure ledger", "audit log")


@dataclass(frozen=True)
class RecipientErased:
    account: str
    erased: str  # the recipient's blind index
    completed_at: str
    counts: ErasureCounts
    # the parties queued an Article 19 POST: [{party, state}]
    notified: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LegalHold:
    name: str
    until: str
    kept: tuple[str, ...] = KEPT_UNDER_HOLD


@dataclass(frozen=True)
class AccountDeleted:
    account: str
    deleted_at: str
    cancelled: int
    domains_deleted: int
    keys_destroyed: int
    legal_hold: LegalHold


@dataclass(frozen=True)
class RequestCompleted:
    request: str
    type: str
    subject_type: str
    subject: str
    completed_at: str
    result: dict[str, Any]


Record = TypeVar("Record", RecipientErased, AccountDeleted, RequestCompleted)


@dataclass(frozen=True)
class Signed(Generic[Record]):
    record: Record
    signature: str

    def as_json(self) -> dict[str, Any]:
        return {"record": asdict(self.record), "signature": self.signature,
                "signed_with": SIGNED_WITH}


def sign(session: Session, vault: Vault, account_id: str, record: Record) -> Signed[Record]:
    """HMAC-SHA256 of the record's canonical JSON under the account's signing key."""
    canonical = json.dumps(asdict(record), sort_keys=True, separators=(",", ":"))
    key = signing_key(session, vault, account_id)
    return Signed(record, hmac.new(key.encode(), canonical.encode(),
                                   hashlib.sha256).hexdigest())
