"""The directory, in the main database: which region holds what. Entries are named by a
keyed hash of what they stand for (an account id, a domain name, an API key's digest), so
the main database holds no account's ids or domains."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import TECHNICAL, classified, column

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
