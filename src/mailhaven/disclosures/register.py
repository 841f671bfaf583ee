"""The register of sub-processors: the companies the platform hands personal data to, as
the notice lists them (`notices.subprocessors` keeps it and amends the notice). In the main
database: it belongs to no region, and names companies, not people. Here, below both
`notices` and `disclosures`, because Article 19 notifications go to them too."""

from __future__ import annotations

import json

from sqlalchemy import Float, LargeBinary, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session

from mailhaven.storage.base import Base
from mailhaven.storage.inventory import TECHNICAL, classified, column
from mailhaven.vault import Vault

REGISTER = classified(
    "non-personal", "none", "telling people who receives their data",
    "life of the installation (the register's history is part of the notice's)",
    basis="legal obligation",
    note="companies the platform hands personal data to: name, purpose, categories, place, "
         "transfer mechanism, contract date, where to notify them")
SIGNING_KEY = classified(
    "non-personal", "none", "telling recipients of personal data of corrections and erasures",
    "until the sub-processor is removed", basis="legal obligation",
    note="the key that signs Article 19 notifications to this party, sealed by the master key")
SIGNING_LABEL = "subprocessor-signing"

class Subprocessor(Base):
    """A company that processes personal data for the platform. It may receive data from
    `effective_at` (the amendment that added it took effect) until `removed_at`."""

    __tablename__ = "subprocessors"

    id: Mapped[str] = column(String(24), primary_key=True, data=TECHNICAL)
    name: Mapped[str] = column(String(200), data=REGISTER)
    purpose: Mapped[str] = column(Text, data=REGISTER)
    data_categories: Mapped[str] = column(Text, default="[]", data=REGISTER)  # JSON list
    location: Mapped[str] = column(String(200), data=REGISTER)  # "Frankfurt, Germany"
    region: Mapped[str | None] = column(String(8), nullable=True, data=REGISTER)  # None: all
    transfer_mechanism: Mapped[str] = column(String(64), data=REGISTER)  # adequacy, SCCs, …
    contract_date: Mapped[str] = column(String(10), data=REGISTER)  # YYYY-MM-DD
    notification_endpoint: Mapped[str | None] = column(String(2048), nullable=True,
                                                       data=REGISTER)
    signing_key_sealed: Mapped[bytes | None] = column(
        LargeBinary, nullable=True, data=SIGNING_KEY, info={"master_key_label": SIGNING_LABEL})
    added_at: Mapped[float] = column(Float, data=REGISTER)
    effective_at: Mapped[float] = column(Float, data=REGISTER)
    removed_at: Mapped[float | None] = column(Float, nullable=True, data=REGISTER)
    replaces_id: Mapped[str | None] = column(String(24), nullable=True, data=TECHNICAL)

    @property
    def categories(self) -> list[str]:
        return list(json.loads(self.data_categories or "[]"))


def active_subprocessors(session: Session, now: float) -> list[Subprocessor]:
    """Those who may receive personal data at `now`, by name."""
    return list(session.scalars(
        select(Subprocessor)
        .where(Subprocessor.effective_at <= now,
               or_(Subprocessor.removed_at.is_(None), Subprocessor.removed_at > now))
        .order_by(Subprocessor.name)))


def signing_key(vault: Vault, subprocessor: Subprocessor) -> str | None:
    """The key that signs notifications to `subprocessor` (the main database's vault)."""
    if subprocessor.signing_key_sealed is None:
        return None
    return vault.open_secret(SIGNING_LABEL, subprocessor.signing_key_sealed).decode()
