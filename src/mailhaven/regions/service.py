"""Finding the region that holds an account, a domain or an API key.

The directory is a cache of the truth the regions hold: an entry points at the region that
had the thing when it was last looked for; when the region no longer has it (a domain
deleted there and added in another region) or there is no entry, every open region is asked
and the entry written again. So no path that creates or deletes has to remember the
directory, and a stale entry costs one more query, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.accounts.service import account_for_digest
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.regions.models import RegionEntry
from mailhaven.services import Platform, Services
from mailhaven.storage.db import dialect_insert

Kind = Literal["account", "domain", "key"]
Probe = Callable[[Session], bool]


def entry_index(platform: Platform, kind: Kind, value: str) -> str:
    return platform.directory_vault.blind_index("region-directory", f"{kind}\x00{value}")


def locate(platform: Platform, kind: Kind, value: str, probe: Probe) -> Services | None:
    """The open region where `probe` finds the thing, by the directory first."""
    if len(platform.regions) == 1:
        return next(iter(platform.regions.values()))
    index = entry_index(platform, kind, value)
    with platform.directory.sessions() as session:
        named = session.scalar(select(RegionEntry.region)
                               .where(RegionEntry.entry_index == index))
    if named in platform.regions and _holds(platform.regions[named], probe):
        return platform.regions[named]
    for name, services in platform.regions.items():
        if name != named and _holds(services, probe):
            record(platform, kind, value, name)
            return services
    return None


def _holds(services: Services, probe: Probe) -> bool:
    with services.db.sessions() as session:
        return probe(session)


def record(platform: Platform, kind: Kind, value: str, region: str) -> None:
    """Say that `region` holds the thing (an upsert)."""
    index = entry_index(platform, kind, value)
    with platform.directory.transaction() as session:
        insert = dialect_insert(platform.directory.engine.dialect.name, RegionEntry)
        session.execute(insert.values(entry_index=index, region=region,
                                      updated_at=platform.clock.now())
                        .on_conflict_do_update(index_elements=["entry_index"],
                                               set_={"region": region,
                                                     "updated_at": platform.clock.now()}))


def forget(platform: Platform, kind: Kind, value: str) -> None:
    with platform.directory.transaction() as session:
        session.execute(delete(RegionEntry)
                        .where(RegionEntry.entry_index == entry_index(platform, kind, value)))


def for_account(platform: Platform, account_id: str) -> Services | None:
    return locate(platform, "account", account_id,
                  lambda s: s.get(Account, account_id) is not None)


def for_domain(platform: Platform, name: str) -> Services | None:
    """The region of the domain a name stands for, by domains.service.domain_named's rule
    over the whole platform: the region holding the verified copy; else the region of the
    only copy; else none. The first region holding any copy would let an unverified copy
    added in one region capture another region's verified domain (its MX, its privacy
    requests)."""
    name = name.strip().rstrip(".").lower()
    if len(platform.regions) == 1:
        return next(iter(platform.regions.values()))
    with platform.directory.sessions() as session:
        named = session.scalar(select(RegionEntry.region).where(
            RegionEntry.entry_index == entry_index(platform, "domain", name)))
    if named in platform.regions and _holds(platform.regions[named],
                                            lambda s: _verified(s, name)):
        return platform.regions[named]  # the one verified copy: no other region may have one
    holding: list[str] = []
    for region, services in platform.regions.items():
        with services.db.sessions() as session:
            if _verified(session, name):
                found = region
                break
            holding += [region] * _copies(session, name)
    else:
        if len(holding) != 1:
            return None
        found = holding[0]
    if found != named:
        record(platform, "domain", name, found)
    return platform.regions[found]


def _verified(session: Session, name: str) -> bool:
    return session.scalar(select(Domain.id).where(
        Domain.name == name, Domain.state == ACTIVE_DOMAIN).limit(1)) is not None


def _copies(session: Session, name: str) -> int:
    """How many copies of the name the region has (0, 1, or 2 for "more than one")."""
    return len(session.scalars(select(Domain.id).where(Domain.name == name).limit(2)).all())


def for_key(platform: Platform, digest: str) -> Services | None:
    """The region of an API key (by its digest); None for a key no region has."""
    return locate(platform, "key", digest, lambda s: account_for_digest(s, digest) is not None)
