"""An account's own retention period for one category; categories it doesn't name keep
their default (retention/categories.py)."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

POLICY = classified(
    "non-personal", "none", "storage limitation (retention settings)", "life of the account",
    note="a category name and a number of days the account chose",
)


class RetentionPolicy(Base):
    __tablename__ = "retention_policies"

    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True,
        data=OWNERSHIP)
    category: Mapped[str] = column(String(32), primary_key=True, data=POLICY)
    days: Mapped[int] = column(Integer, data=POLICY)
    updated_at: Mapped[float] = column(Float, data=TECHNICAL)
