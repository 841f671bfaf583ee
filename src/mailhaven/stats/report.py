"""Anonymous platform-wide statistics (SPEC N15): figures that leave the accounts, computed
from the hourly counters alone and published only for groups of at least k accounts,
optionally with Laplace noise.

`collect` reads the counters of every open region into `Usage` (accounts numbered, never
named); `publish` turns it into the report. An account's own stats (the Stats API) stay
exact: nothing here touches them.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from mailhaven.domains.models import Domain
from mailhaven.site.mail import existing_platform_account
from mailhaven.stats.models import StatCount
from mailhaven.stats.service import EVENTS
from mailhaven.storage.db import Database

DAY = 86_400
ACTIVE = "active_accounts"  # accounts with any counted event in the cell
MEASURES = (*EVENTS, ACTIVE)
PARTITIONS = ("by_region", "by_day", "by_volume")  # the first may keep a small remainder
SUPPRESSED = "suppressed"
DEFAULT_CLIP = 1000
# Accounts by messages accepted in the period: (label, lowest count)
VOLUME_BANDS = (("0", 0), ("1-999", 1), ("1000-9999", 1000), ("10000-99999", 10_000),
                ("100000+", 100_000))


@dataclass(frozen=True)
class Row:
    """One account's count of one event on one day: the account by a number of this
    report's own, so that no id is carried past `collect`."""

    region: str
    account: int
    day: int  # epoch seconds, 00:00 UTC
    event: str
    count: int


@dataclass(frozen=True)
class Usage:
    regions: tuple[str, ...]
    days: tuple[int, ...]
    rows: tuple[Row, ...]


def period(now: float, days: int) -> tuple[int, ...]:
    """The last `days` whole UTC days before today (today is not over: its figures would
    change between two reports)."""
    today = int(now // DAY * DAY)
    return tuple(today - DAY * n for n in range(days, 0, -1))


def collect(regions: Mapping[str, Database], now: float, days: int) -> Usage:
    """Every open region's counters (the domains' own, not per tag) over the period, summed
    per account, day and event. The region's own platform account (`site.mail`: sign-up
    confirmations, notices) is no customer: counted, it would make k-1 customers look like k."""
    span = period(now, days)
    start, end = span[0], span[-1] + DAY
    numbers: dict[tuple[str, str], int] = {}
    rows: list[Row] = []
    for region, db in regions.items():
        day = StatCount.hour - StatCount.hour % DAY
        query = (select(Domain.account_id, day, StatCount.event, func.sum(StatCount.count))
                 .join(Domain, Domain.id == StatCount.domain_id)
                 .where(StatCount.tag == "", StatCount.hour >= start, StatCount.hour < end,
                        StatCount.event.in_(EVENTS))
                 .group_by(Domain.account_id, day, StatCount.event))
        with db.sessions() as session:
            own = existing_platform_account(session)
            if own is not None:
                query = query.where(Domain.account_id != own)
            for account_id, on, event, n in session.execute(query):
                if n:
                    number = numbers.setdefault((region, account_id), len(numbers))
                    rows.append(Row(region, number, int(on), event, int(n)))
    return Usage(tuple(regions), span, tuple(rows))


def _band(accepted: int) -> str:
    return [label for label, lowest in VOLUME_BANDS if accepted >= lowest][-1]


Parts = dict[int, int]  # account number -> its part of a cell


def _cells(usage: Usage, measure: str) -> tuple[Parts, dict[str, dict[object, Parts]]]:
    """Per account, its contribution to the total and to each cell of each partition."""
    accepted: dict[int, int] = defaultdict(int)
    for row in usage.rows:
        if row.event == "accepted":
            accepted[row.account] += row.count
    total: Parts = defaultdict(int)
    cells: dict[str, dict[object, Parts]] = {
        "by_region": {r: defaultdict(int) for r in usage.regions},
        "by_day": {d: defaultdict(int) for d in usage.days},
        "by_volume": {label: defaultdict(int) for label, _ in VOLUME_BANDS},
    }
    for row in usage.rows:
        if measure != ACTIVE and row.event != measure:
            continue
        keys = {"by_region": row.region, "by_day": row.day,
                "by_volume": _band(accepted[row.account])}
        if measure == ACTIVE:  # an account counts once in a cell
            total[row.account] = 1
            for partition, key in keys.items():
                cells[partition][key][row.account] = 1
        else:
            total[row.account] += row.count
            for partition, key in keys.items():
                cells[partition][key][row.account] += row.count
    return total, cells


def suppress(total: set[int], partitions: dict[str, dict[object, set[int]]], k: int,
             ) -> tuple[bool, dict[str, set[object]]]:
    """Whether the total is published, and which cells of each partition are not.

    A cell of 1 to k-1 accounts is suppressed (an empty one is 0: it is about no one). Then
    no suppressed cell may be computed from what is published: the total is published only
    if, in every partition, the suppressed cells together hold no account or at least k.
    Otherwise the total is withheld; the first
    partition may keep its small remainder (its larger cells are published), and every
    other partition has more cells suppressed, smallest first, until its remainder holds at
    least k accounts and is not empty (a partition published whole would give the total).
    """
    hidden = {p: {key for key, accounts in cells.items() if 0 < len(accounts) < k}
              for p, cells in partitions.items()}

    def remainder(p: str) -> set[int]:
        return set().union(*(partitions[p][key] for key in hidden[p]))

    leaky = [p for p in partitions if 0 < len(remainder(p)) < k]
    published_total = (not total or len(total) >= k) and not leaky
    for p in partitions:
        if leaky and p == leaky[0]:
            continue
        while not (len(remainder(p)) >= k or (published_total and not remainder(p))):
            shown = [key for key, accounts in partitions[p].items()
                     if accounts and key not in hidden[p]]
            if not shown:
                break
            hidden[p].add(min(shown, key=lambda key: (len(partitions[p][key]), str(key))))
    return published_total, hidden


def laplace(scale: float, rng: random.Random) -> float:
    """A draw of Laplace(0, scale): the difference of two exponential draws."""
    return rng.expovariate(1 / scale) - rng.expovariate(1 / scale)


def publish(usage: Usage, *, k: int, epsilon: float | None = None, clip: int = DEFAULT_CLIP,
            rng: random.Random | None = None) -> dict:
    """The report: every measure's total and its cells per region, day and volume band,
    a number or "suppressed". With `epsilon`, each account's part of a cell is clipped at
    `clip` (1 for active accounts) and Laplace(clip/epsilon) noise is added to the sum."""
    if k < 2:
        raise ValueError("k must be at least 2: a group of one account is that account")
    if epsilon is not None and not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError("epsilon must be a positive number")
    if clip < 1:
        raise ValueError("the clipping bound must be at least 1")
    noise = rng or secrets.SystemRandom()

    def value(parts: dict[int, int], measure: str) -> int:
        if epsilon is None:
            return sum(parts.values())
        bound = 1 if measure == ACTIVE else clip
        clipped = sum(min(n, bound) for n in parts.values())
        return max(0, round(clipped + laplace(bound / epsilon, noise)))

    totals: dict[str, int | str] = {}
    tables: dict[str, dict[str, dict[str, int | str]]] = {
        "by_region": {r: {} for r in usage.regions},
        "by_day": {_date(d): {} for d in usage.days},
        "by_volume": {label: {} for label, _ in VOLUME_BANDS},
    }
    for measure in MEASURES:
        total, cells = _cells(usage, measure)
        accounts = {p: {key: {a for a, n in parts.items() if n} for key, parts in c.items()}
                    for p, c in cells.items()}
        shown, hidden = suppress({a for a, n in total.items() if n}, accounts, k)
        totals[measure] = value(total, measure) if shown else SUPPRESSED
        for p, c in cells.items():
            for key, parts in c.items():
                name = _date(key) if p == "by_day" else str(key)
                tables[p][name][measure] = SUPPRESSED if key in hidden[p] else value(
                    parts, measure)
    return {
        "period": {"from": _date(usage.days[0]), "to": _date(usage.days[-1]),
                   "days": len(usage.days)},
        "k": k,
        "noise": ({"mechanism": "laplace", "epsilon": epsilon, "clip": clip,
                   "scale": clip / epsilon, "scale_active_accounts": 1 / epsilon}
                  if epsilon is not None else None),
        "regions": list(usage.regions),
        "measures": list(MEASURES),
        "totals": totals,
        **tables,
    }


def report(regions: Mapping[str, Database], now: float, *, days: int, k: int,
           epsilon: float | None = None, clip: int = DEFAULT_CLIP,
           rng: random.Random | None = None) -> dict:
    """`collect` then `publish`: the report `mailhaven stats report` writes."""
    if days < 1:
        raise ValueError("the period is at least one day")
    return publish(collect(regions, now, days), k=k, epsilon=epsilon, clip=clip, rng=rng)


def _date(day: object) -> str:
    assert isinstance(day, int)
    return datetime.fromtimestamp(day, UTC).date().isoformat()
