"""The directory, in the main database: which region holds what. Entries are named by a
keyed hash of what they stand for (an account id, a domain name, an API key's digest), so
the main database holds no account's ids or domains."""

from __future__ import annotations

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

DIRECTORY_INDEX = classified(
    "non-personal", "none", "keeping each account's data in its region",
    "until the account, domain or key is deleted",
    note="a keyed hash (HMAC, the main vault's index key) of an account id, a domain name "
         "or an API key's digest: finds the region without storing what it names")
DIRECTORY_REGION = classified(
    "non-personal", "none", "keeping each account's data in its region", "life of the entry")


class RegionEntry(Base):
    """Where an account, a domain or an API key lives."""

    __tablename__ = "region_directory"

    entry_index: Mapped[str] = column(String(64), primary_key=True, data=DIRECTORY_INDEX)
    region: Mapped[str] = column(String(8), data=DIRECTORY_REGION)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)


TRANSFER = classified(
    "non-personal", "account holder", "accounting for transfers of personal data between regions",
    "with the account's request records: to the end of its legal hold",
    basis="legal obligation",
    note="that an operator in another region read the account's personal data: the regions, "
         "the categories read (names of export categories, never their content), why, and "
         "who by a role label (no address)")


class RegionTransfer(Base):
    """A transfer: an operator outside the account's region read its personal data (an
    export, a support lookup). Kept in the account's region and shown in its access export."""

    __tablename__ = "region_transfers"
    __table_args__ = (Index("ix_region_transfers_account", "account_id", "at"),)

    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    account_id: Mapped[str] = column(String(24), data=OWNERSHIP)
    from_region: Mapped[str] = column(String(8), data=TRANSFER)
    to_region: Mapped[str] = column(String(8), data=TRANSFER)
    what: Mapped[str] = column(Text, data=TRANSFER)  # categories, comma-separated
    purpose: Mapped[str] = column(String(200), data=TRANSFER)
    actor: Mapped[str] = column(String(64), data=TRANSFER)
    at: Mapped[float] = column(Float, data=TECHNICAL)
