"""Retention policies (the defaults and an account's own periods) and the purge that applies
them: batch by batch, each a short transaction, logging counts and never data."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from mailhaven.clock import Clock
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest
from mailhaven.retention.categories import (
    CATEGORIES,
    DAY,
    MAX_DAYS,
    MIN_DAYS,
    Accounts,
    Category,
    delete_rows,
)
from mailhaven.retention.models import RetentionPolicy
from mailhaven.storage.db import Database, insert_for

log = logging.getLogger("mailhaven.retention")
BATCH = 1000


def schedule(settings: Settings | None = None) -> list[dict]:
    """Every category with its default period and the limits an account may choose in; a
    category the operator sets has its period from `settings` and no limits."""
    return [{"category": c.name, "description": c.description, "default_days": c.default_days,
             "min_days": MIN_DAYS, "max_days": MAX_DAYS} if c.setting is None else
            {"category": c.name, "description": c.description,
             "default_days": c.operator_days(settings), "set_by": "operator"}
            for c in CATEGORIES.values()]


def policies(session: Session, account_id: str) -> list[dict]:
    """The account's period for every category it may choose: its own where it set one,
    else the default."""
    own = {name: days for name, days in session.execute(
        select(RetentionPolicy.category, RetentionPolicy.days).where(
            RetentionPolicy.account_id == account_id))}
    return [{**entry, "days": own.get(entry["category"], entry["default_days"]),
             "custom": entry["category"] in own} for entry in schedule()
            if "set_by" not in entry]


def days(session: Session, account_id: str, category: str) -> int:
    """The account's period for one category: its own, or the default."""
    own = session.scalar(select(RetentionPolicy.days).where(
        RetentionPolicy.account_id == account_id, RetentionPolicy.category == category))
    return own if own is not None else CATEGORIES[category].default_days


def bodies_kept_for(session: Session, account_id: str) -> int:
    """How long the account keeps stored message bodies, in seconds: what a domain's
    message_ttl may shorten, never lengthen."""
    return days(session, account_id, "message_bodies") * int(DAY)


def set_policies(session: Session, account_id: str, changes: dict[str, int | None],
                 now: float) -> list[dict]:
    """Set the account's period of each named category; None returns it to the default.
    All or nothing: one bad entry changes none."""
    chosen = [name for name, c in CATEGORIES.items() if c.setting is None]
    for name, days in changes.items():
        if name not in chosen:
            raise BadRequest(f"Unknown retention category: {name}; known: "
                             f"{', '.join(chosen)}")
        if days is not None and not MIN_DAYS <= days <= MAX_DAYS:
            raise BadRequest(f"{name}: days must be between {MIN_DAYS} and {MAX_DAYS}")
    for name, days in sorted(changes.items()):
        if days is None:
            session.execute(delete(RetentionPolicy).where(
                RetentionPolicy.account_id == account_id, RetentionPolicy.category == name))
            continue
        statement = insert_for(session, RetentionPolicy).values(
            account_id=account_id, category=name, days=days, updated_at=now)
        session.execute(statement.on_conflict_do_update(
            index_elements=["account_id", "category"],
            set_={"days": days, "updated_at": now}))
    return policies(session, account_id)


# -- the purge ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """One purge query: a category, the accounts it covers and the cutoff they share."""

    category: Category
    accounts: Accounts
    cutoff: float


def scopes(session: Session, now: float, settings: Settings | None = None) -> list[Scope]:
    """Per category: one scope per period accounts chose, one for everyone else; for a
    category with periods per domain, one per period domains chose (never longer than their
    account's), which the others then leave out; for one the operator sets, one scope."""
    chosen: dict[str, dict[int, set[str]]] = {}
    own_days: dict[tuple[str, str], int] = {}
    for account_id, name, days in session.execute(select(
            RetentionPolicy.account_id, RetentionPolicy.category, RetentionPolicy.days)):
        chosen.setdefault(name, {}).setdefault(days, set()).add(account_id)
        own_days[(account_id, name)] = days
    ttls = session.execute(select(Domain.id, Domain.account_id, Domain.message_ttl).where(
        Domain.message_ttl.is_not(None))).all()
    out = []
    for category in CATEGORIES.values():
        if category.setting is not None:
            out.append(Scope(category, Accounts(frozenset(), all_but=True),
                             now - category.operator_days(settings) * DAY))
            continue
        periods = chosen.get(category.name, {})
        custom = frozenset().union(*periods.values())
        own = category.per_domain and bool(ttls)
        out.append(Scope(category, Accounts(custom, all_but=True, own_period=own),
                         now - category.default_days * DAY))
        out += [Scope(category, Accounts(frozenset(ids), own_period=own), now - days * DAY)
                for days, ids in sorted(periods.items())]
        if own:
            out += _domain_scopes(category, ttls, own_days, now)
    return out


def _domain_scopes(category: Category, ttls: Sequence[Row[str, str, int | None]],
                   own_days: dict[tuple[str, str], int], now: float) -> list[Scope]:
    """One scope per cutoff the domains with a message_ttl have: the shorter of their own
    period and their account's."""
    by_cutoff: dict[float, tuple[set[str], set[str]]] = {}
    for domain_id, account_id, ttl in ttls:
        days = own_days.get((account_id, category.name), category.default_days)
        accounts, domains = by_cutoff.setdefault(now - min(float(ttl or 0), days * DAY),
                                                 (set(), set()))
        accounts.add(account_id)
        domains.add(domain_id)
    return [Scope(category, Accounts(frozenset(a), domains=frozenset(d)), cutoff)
            for cutoff, (a, d) in sorted(by_cutoff.items())]


def run(db: Database, clock: Clock, *, dry_run: bool = False, batch: int = BATCH,
        progress: Callable[[str, int], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        settings: Settings | None = None) -> dict[str, int]:
    """Purge everything expired now; per category, how many rows were purged (or, with
    `dry_run`, would be). Stops between batches once `stopping()` says so. `settings` give
    the operator's periods (their defaults without)."""
    now = clock.now()
    with db.sessions() as session:
        plan = scopes(session, now, settings)
    counts = dict.fromkeys(CATEGORIES, 0)
    for scope in plan:
        category = scope.category
        query = category.expired(scope.accounts, scope.cutoff)
        if dry_run:
            with db.sessions() as session:
                counts[category.name] += session.scalar(
                    select(func.count()).select_from(query.subquery())) or 0
            continue
        while not stopping():
            with db.transaction() as session:
                ids = list(session.scalars(query.limit(batch)))
                if ids:
                    if category.purge is None:
                        delete_rows(session, category, ids)
                    else:
                        category.purge(session, ids)
            counts[category.name] += len(ids)
            if progress is not None and ids:
                progress(category.name, len(ids))
            if len(ids) < batch:
                break
    log.info(json.dumps({"kind": "retention", "dry_run": dry_run, "purged": counts}))
    return counts
