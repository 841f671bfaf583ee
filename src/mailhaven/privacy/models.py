"""What the privacy engine stores: requests and the erasure ledger (a subject's controls and
consents are in `controls.models`). A subject is named only by its keyed blind index (a
recipient) or its account id (an account holder); addresses are sealed or absent."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.controls.models import SUBJECT_INDEX
from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import (
    OWNERSHIP,
    RECIPIENT_INDEX,
    TECHNICAL,
    classified,
    column,
)

REQUEST_FACTS = classified(
    "non-personal", "none", "answering data-subject requests",
    "finished requests: working data 7 days, the record 3 years", basis="legal obligation")
REQUEST_SEALED = classified(
    "personal", "recipient or account holder", "answering data-subject requests",
    "finished requests: 7 days", basis="legal obligation",
    note="the requester's address and details, sealed under the subject's vault key")
EXTENSION_SEALED = classified(
    "personal", "recipient or account holder", "answering data-subject requests",
    "the request record: 3 years", basis="legal obligation",
    note="why the answer was extended (free text, may be about the subject), sealed under "
         "the subject's vault key")
LEDGER = classified(
    "non-personal", "none", "keeping erased subjects erased (backups)",
    "life of the installation", basis="legal obligation",
    note="ids of destroyed keys and the keyed index of the erased subject")
FORM_COUNTER_INDEX = classified(
    "personal", "recipient", "keeping the privacy request form from being abused",
    "2 days", basis="legitimate interest",
    note="a keyed hash (HMAC) of the client's network, the named domain or the mailbox of a "
         "request made without an API key; never the value itself")
FORM_COUNTER = classified(
    "non-personal", "none", "keeping the privacy request form from being abused", "2 days",
    basis="legitimate interest")


class PrivacyRequest(Base):
    """A data-subject request and where it stands."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_due", "state", "due_at"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    right: Mapped[str] = column(String(24), data=REQUEST_FACTS)
    subject_type: Mapped[str] = column(String(12), data=REQUEST_FACTS)  # holder | recipient
    subject_index: Mapped[str] = column(String(64), index=True, data=SUBJECT_INDEX)
    key_id: Mapped[str | None] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="SET NULL"), nullable=True,
        index=True, data=TECHNICAL)  # ON DELETE SET NULL finds rows by it when keys go
    details_sealed: Mapped[bytes | None] = column(LargeBinary, data=REQUEST_SEALED)
    state: Mapped[str] = column(String(24), data=REQUEST_FACTS)
    received_at: Mapped[float] = column(Float, data=REQUEST_FACTS)
    due_at: Mapped[float] = column(Float, data=REQUEST_FACTS)
    extension_sealed: Mapped[bytes | None] = column(LargeBinary, data=EXTENSION_SEALED)
    extension_notified_at: Mapped[float | None] = column(Float, data=REQUEST_FACTS)
    denied_reason: Mapped[str | None] = column(String(48), data=REQUEST_FACTS)
    token_digest: Mapped[str | None] = column(String(64), unique=True, data=TECHNICAL)
    verified_at: Mapped[float | None] = column(Float, data=REQUEST_FACTS)
    completed_at: Mapped[float | None] = column(Float, data=REQUEST_FACTS)
    result: Mapped[str] = column(Text, default="{}", data=REQUEST_FACTS)  # JSON, no personal
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)






class Erasure(Base):
    """What an erasure destroyed, so that a restored backup can destroy it again."""

    __tablename__ = "erasures"

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), index=True, data=OWNERSHIP)
    subject_index: Mapped[str] = column(String(64), data=RECIPIENT_INDEX)
    key_ids: Mapped[str] = column(Text, default="[]", data=LEDGER)  # JSON
    storage_keys: Mapped[str] = column(Text, default="[]", data=LEDGER)  # messages touched
    at: Mapped[float] = column(Float, data=LEDGER)
    # When the rows the erasure left unreadable (events, copies, bodies, destroyed keys'
    # rows) were all deleted; NULL while the background deletion has some left
    # (`privacy.erasure.delete_rows`, run by `privacy.runner.ErasureDeleter`).
    rows_deleted_at: Mapped[float | None] = column(Float, nullable=True, index=True,
                                                   data=LEDGER)


class FormCounter(Base):
    """Requests made by the form without an API key, per client network, domain or mailbox
    and time window: counted in the database, so every process of an installation sees
    the same counts."""

    __tablename__ = "form_counters"
    __table_args__ = (Index("ix_form_counters_window_start", "window_start"),)

    bucket_index: Mapped[str] = column(String(64), primary_key=True, data=FORM_COUNTER_INDEX)
    window_start: Mapped[float] = column(Float, primary_key=True, data=FORM_COUNTER)
    hits: Mapped[int] = column(Integer, data=FORM_COUNTER)
