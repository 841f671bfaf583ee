"""Vault keys: one wrapped AES key per data subject, and one per stored message body."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, RECIPIENT_INDEX, TECHNICAL, classified, column

WRAPPED_KEY = classified(
    "non-personal", "none", "encryption of personal data", "until erasure or retention expiry",
    note="a data key wrapped by the master key; deleting it erases what it encrypts",
)


# A destroyed key's row: its key material gone (wrapped_key DESTROYED) in the request, the
# row itself left until what still names it is deleted (in the background,
# `privacy.erasure.delete_rows`: deleting it now would write every row that references it,
# through ON DELETE SET NULL). Read as absent everywhere (`Vault.keys`). Only the key
# material changes for a content key: no indexed column, so on PostgreSQL destroying an
# erased subject's 50,000 message keys is a HOT update (vault_keys has room for it, its
# fillfactor: migration 0043) rather than 150,000 index entries written again.
DESTROYED = b""
# A destroyed subject key's purpose (its blind index gone too): the address may be given a
# new key, and the background deletion finds an account's erased subjects by it. Before
# migration 0043 every destroyed key was marked so.
ERASED = "erased"


class VaultKey(Base):
    __tablename__ = "vault_keys"
    __table_args__ = (UniqueConstraint("account_id", "purpose", "blind_index"),)

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP
    )
    purpose: Mapped[str] = column(String(16), data=TECHNICAL)  # "subject" | "content" | ERASED
    blind_index: Mapped[str | None] = column(String(64), data=RECIPIENT_INDEX)
    wrapped_key: Mapped[bytes] = column(LargeBinary, data=WRAPPED_KEY,
                                        info={"master_key_label": "{id}"})
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
