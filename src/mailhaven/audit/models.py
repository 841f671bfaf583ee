"""The audit log table (SPEC N14): one row per privacy step, each chained to the one before."""

from __future__ import annotations

from sqlalchemy import Float, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import TECHNICAL, classified, column

RETENTION = "life of the installation (append-only; see docs/privacy.md)"
AUDIT_RECORD = classified(
    "non-personal", "none", "accountability for privacy operations", RETENTION,
    basis="legal obligation",
)
REFERENCE = classified(
    "non-personal", "none", "accountability for privacy operations", RETENTION,
    basis="legal obligation",
    note="an opaque reference (account id, request id, key id); never an address",
)
SUBJECT_INDEX = classified(
    "personal", "recipient or account holder", "accountability for privacy operations",
    RETENTION, basis="legal obligation",
    note="keyed blind index (HMAC) of the subject the step concerns; kept after erasure so "
         "a restore can re-apply it",
)
DETAILS_SEALED = classified(
    "personal", "recipient or account holder", "accountability for privacy operations",
    "until the subject's key is erased", basis="legal obligation",
    note="ciphertext under the subject's vault key; erasure of the key makes it unreadable",
)
CHAIN = classified(
    "non-personal", "none", "tamper evidence", RETENTION, basis="legal obligation",
    note="HMAC chain over the row's fields and its predecessor's hash",
)


class AuditEntry(Base):
    """Written only by `mailhaven.audit.append`; triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    # Two rows with one predecessor would be a fork: the database refuses it outright.
    __table_args__ = (UniqueConstraint("prev_hash"),)

    # Assigned by `append` (head + 1) before the INSERT: the id is inside the hash and the
    # row can never be updated afterwards to add it.
    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=False, data=TECHNICAL)
    at: Mapped[float] = column(Float, data=AUDIT_RECORD)
    actor: Mapped[str] = column(String(64), data=REFERENCE)  # "account:<id>", "cli", "system"
    action: Mapped[str] = column(String(64), data=AUDIT_RECORD)  # "privacy.request.received"
    target: Mapped[str | None] = column(String(64), index=True, data=REFERENCE)
    subject_index: Mapped[str | None] = column(String(64), index=True, data=SUBJECT_INDEX)
    details: Mapped[str] = column(Text, data=AUDIT_RECORD)  # canonical JSON, nothing personal
    details_sealed: Mapped[bytes | None] = column(LargeBinary, data=DETAILS_SEALED)
    # Deliberately not a foreign key: ON DELETE SET NULL would be an UPDATE of a hashed
    # column in an append-only table. Erasing the key row leaves an id that opens nothing.
    key_id: Mapped[str | None] = column(String(24), data=REFERENCE)
    prev_hash: Mapped[str] = column(String(64), data=CHAIN)
    hash: Mapped[str] = column(String(64), data=CHAIN)
