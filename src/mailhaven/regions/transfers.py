"""The transfer log (SPEC N11): an account's personal data read by an operator whose process
runs outside the account's region. The process's region is `MAILHAVEN_SITE_REGION` (default:
the home region). Logged in the account's own region, listed in its holder's access export.
A backup is not a transfer: it stays with its region."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.regions.models import RegionTransfer
from mailhaven.services import Services


@dataclass(frozen=True)
class Transfer:
    from_region: str
    to_region: str
    what: tuple[str, ...]
    purpose: str
    actor: str
    at: float


def is_transfer(services: Services) -> bool:
    """Whether reading this region's data from this process leaves the region."""
    return services.settings.process_region != services.region


def record_transfer(services: Services, account_id: str, what: Iterable[str], purpose: str,
                    actor: str = "operator") -> Transfer | None:
    """Log the read when it crosses regions (in its own transaction, before the data is
    read: a transfer that failed half-way is still logged); None when it does not."""
    if not is_transfer(services):
        return None
    row = RegionTransfer(account_id=account_id, from_region=services.region,
                         to_region=services.settings.process_region,
                         what=",".join(what), purpose=purpose, actor=actor,
                         at=services.clock.now())
    with services.db.transaction() as session:
        session.add(row)
    return Transfer(row.from_region, row.to_region, tuple(row.what.split(",")), row.purpose,
                    row.actor, row.at)


def transfers_of(session: Session, account_id: str) -> list[Transfer]:
    """The account's transfers, oldest first."""
    rows = session.scalars(select(RegionTransfer).where(RegionTransfer.account_id == account_id)
                           .order_by(RegionTransfer.at, RegionTransfer.id))
    return [Transfer(r.from_region, r.to_region, tuple(filter(None, r.what.split(","))),
                     r.purpose, r.actor, r.at) for r in rows]
