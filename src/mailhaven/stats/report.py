"""Anonymous platform-wide statistics (SPEC N15): figures that leave the accounts, computed
from the hourly counters alone and published only for groups of at least k accounts that no
one account dominates, optionally with Laplace noise. Exact figures cover fixed calendar
periods only (`windows`: days, ISO weeks, months, UTC): two reports of overlapping windows
of any length would differ by what neither shows.

`collect` reads the counters of every open region into `Usage` (accounts numbered, never
named); `publish` turns one period's into its tables, `report` does both for each period.
An account's own stats (the Stats API) stay exact: nothing here touches them.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from mailhaven.domains.models import Domain
from mailhaven.site.mail import existing_platform_account
from mailhaven.stats.models import StatCount
from mailhaven.stats.service import EVENTS
from mailhaven.storage.db import Database

DAY = 86_400
ACTIVE = "active_accounts"  # accounts with any counted event in the cell
MEASURES = (*EVENTS, ACTIVE)
PARTITIONS = ("by_region", "by_volume")  # the first may keep a small remainder
UNITS = ("day", "week", "month")  # the periods exact figures are published for
SUPPRESSED = "suppressed"
DEFAULT_CLIP = 1000
DEFAULT_P = 10  # the p% rule's p (`dominated`)
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


Window = tuple[str, int, int]  # label, first second, the second after


def windows(now: float, unit: str, count: int) -> list[Window]:
    """The last `count` complete UTC calendar days, ISO weeks (Monday to Sunday) or months,
    oldest first: every report cuts time at the same boundaries, so no two of them cover
    overlapping stretches a figure could be the difference of."""
    if unit not in UNITS:
        raise ValueError(f"the period is one of {', '.join(UNITS)}")
    if count < 1:
        raise ValueError("at least one period")
    today = datetime.fromtimestamp(now, UTC).date()
    found: list[Window] = []
    if unit == "day":
        found = [(day.isoformat(), _epoch(day), _epoch(day) + DAY)
                 for day in (today - timedelta(days=n) for n in range(1, count + 1))]
    elif unit == "week":
        monday = today - timedelta(days=today.weekday())
        for n in range(1, count + 1):
            first = monday - timedelta(weeks=n)
            year, week, _ = first.isocalendar()
            found.append((f"{year}-W{week:02d}", _epoch(first), _epoch(first) + 7 * DAY))
    else:
        end = today.replace(day=1)
        for _ in range(count):
            first = (end - timedelta(days=1)).replace(day=1)
            found.append((f"{first:%Y-%m}", _epoch(first), _epoch(end)))
            end = first
    return found[::-1]


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def collect(regions: Mapping[str, Database], start: int, end: int) -> Usage:
    """Every open region's counters (the domains' own, not per tag) from `start` (a UTC
    midnight) to `end`, summed per account, day and event. The region's own platform account
    (`site.mail`: sign-up confirmations, notices) is no customer: counted, it would make
    k-1 customers look like k."""
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
    return Usage(tuple(regions), tuple(range(start, end, DAY)), tuple(rows))


def within(usage: Usage, start: int, end: int) -> Usage:
    """The part of `usage` from `start` to `end`."""
    return Usage(usage.regions, tuple(d for d in usage.days if start <= d < end),
                 tuple(row for row in usage.rows if start <= row.day < end))


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
        "by_volume": {label: defaultdict(int) for label, _ in VOLUME_BANDS},
    }
    for row in usage.rows:
        if measure != ACTIVE and row.event != measure:
            continue
        keys = {"by_region": row.region, "by_volume": _band(accepted[row.account])}
        if measure == ACTIVE:  # an account counts once in a cell
            total[row.account] = 1
            for partition, key in keys.items():
                cells[partition][key][row.account] = 1
        else:
            total[row.account] += row.count
            for partition, key in keys.items():
                cells[partition][key][row.account] += row.count
    return total, cells


def dominated(parts: Mapping[int, int], p: float) -> bool:
    """The p% rule: the figure less its two largest parts is under p% of the largest, so
    that the second-largest contributor, subtracting its own part, would learn the largest
    to within p% (and a reader who guesses the small ones, nearly as well)."""
    largest = sorted((n for n in parts.values() if n > 0), reverse=True)[:2]
    return bool(largest) and sum(parts.values()) - sum(largest) < p / 100 * largest[0]


def suppress(total: Mapping[int, int],
             partitions: Mapping[str, Mapping[object, Mapping[int, int]]], k: int,
             p: float = 0) -> tuple[bool, dict[str, set[object]]]:
    """Whether the total is published, and which cells of each partition are not; `total`
    and every cell are each account's part of the figure.

    A cell is safe if at least k accounts contribute to it and it is not dominated by one
    (`dominated`, the p% rule; p=0 leaves that out). A cell with a contributor that is not
    safe is suppressed (an empty one is 0: it is about no one). Then no suppressed cell may
    be computed from what is published: the total is published only if it is safe and, in
    every partition, the suppressed cells taken together hold no account or are safe.
    Otherwise the total is withheld; the first partition may keep its unsafe remainder (its
    other cells are published), and every other partition has more cells suppressed,
    smallest first, until its remainder is safe and not empty (a partition published whole
    would give the total).
    """
    def accounts(parts: Mapping[int, int]) -> int:
        return sum(1 for n in parts.values() if n)

    def safe(parts: Mapping[int, int]) -> bool:
        return accounts(parts) >= k and not (p and dominated(parts, p))

    hidden = {name: {key for key, parts in cells.items() if accounts(parts) and not safe(parts)}
              for name, cells in partitions.items()}

    def remainder(name: str) -> dict[int, int]:
        summed: dict[int, int] = defaultdict(int)
        for key in hidden[name]:
            for account, n in partitions[name][key].items():
                summed[account] += n
        return summed

    leaky = [name for name in partitions
             if accounts(remainder(name)) and not safe(remainder(name))]
    published_total = (not accounts(total) or safe(total)) and not leaky
    for name in partitions:
        if leaky and name == leaky[0]:
            continue
        while not (safe(remainder(name))
                   or (published_total and not accounts(remainder(name)))):
            shown = [key for key, parts in partitions[name].items()
                     if accounts(parts) and key not in hidden[name]]
            if not shown:
                break
            hidden[name].add(min(shown, key=lambda key: (
                accounts(partitions[name][key]), str(key))))
    return published_total, hidden


def laplace(scale: float, rng: random.Random) -> float:
    """A draw of Laplace(0, scale): the difference of two exponential draws."""
    return rng.expovariate(1 / scale) - rng.expovariate(1 / scale)


def publish(usage: Usage, *, k: int, dominance: float = DEFAULT_P,
            epsilon: float | None = None, clip: int = DEFAULT_CLIP,
            rng: random.Random | None = None) -> dict:
    """One period's figures: every measure's total and its cells per region and volume
    band, a number or "suppressed" (fewer than k accounts, or dominated by one by the p%
    rule, p = `dominance`). With `epsilon`, each account's part of a cell is clipped at
    `clip` (1 for active accounts) and Laplace(clip/epsilon) noise is added to the sum."""
    _check(k, dominance, epsilon, clip)
    return {**_settings(usage.regions, k, dominance, epsilon, clip),
            "period": {"from": _date(usage.days[0]), "to": _date(usage.days[-1]),
                       "days": len(usage.days)},
            **_figures(usage, k, dominance, epsilon, clip, rng or secrets.SystemRandom())}


def report(regions: Mapping[str, Database], now: float, *, k: int, unit: str = "month",
           count: int = 1, days: int | None = None, dominance: float = DEFAULT_P,
           epsilon: float | None = None, clip: int = DEFAULT_CLIP,
           rng: random.Random | None = None) -> dict:
    """The report `mailhaven stats report` writes: `publish` for each of the last `count`
    calendar periods (`windows`), or, with noise only, for the last `days` days."""
    _check(k, dominance, epsilon, clip)
    if days is not None:
        if epsilon is None:
            raise ValueError(
                "a window of days needs --epsilon: exact figures are published for whole "
                "periods only (--period day, week or month), since two windows that overlap "
                "differ by what neither shows")
        if days < 1:
            raise ValueError("the period is at least one day")
        span = period(now, days)
        cut = [(f"{_date(span[0])}/{_date(span[-1])}", span[0], span[-1] + DAY)]
    else:
        cut = windows(now, unit, count)
    usage = collect(regions, cut[0][1], cut[-1][2])
    noise = rng or secrets.SystemRandom()
    periods = []
    for label, start, end in cut:
        part = within(usage, start, end)
        periods.append({"period": label, "from": _date(start), "to": _date(end - DAY),
                        "days": len(part.days),
                        **_figures(part, k, dominance, epsilon, clip, noise)})
    return {**_settings(usage.regions, k, dominance, epsilon, clip),
            "period": {"unit": "days" if days is not None else unit, "count": len(cut),
                       "from": periods[0]["from"], "to": periods[-1]["to"]},
            "periods": periods}


def _check(k: int, dominance: float, epsilon: float | None, clip: int) -> None:
    if k < 2:
        raise ValueError("k must be at least 2: a group of one account is that account")
    if epsilon is not None and not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError("epsilon must be a positive number")
    if clip < 1:
        raise ValueError("the clipping bound must be at least 1")
    if not 0 <= dominance <= 100:
        raise ValueError("the p of the dominance rule is a percentage, 0 to 100")


def _settings(regions: tuple[str, ...], k: int, dominance: float, epsilon: float | None,
              clip: int) -> dict:
    return {
        "k": k,
        "dominance": {"rule": "p%", "p": dominance},
        "noise": ({"mechanism": "laplace", "epsilon": epsilon, "clip": clip,
                   "scale": clip / epsilon, "scale_active_accounts": 1 / epsilon}
                  if epsilon is not None else None),
        "regions": list(regions),
        "measures": list(MEASURES),
    }


def _figures(usage: Usage, k: int, dominance: float, epsilon: float | None, clip: int,
             noise: random.Random) -> dict:
    def value(parts: dict[int, int], measure: str) -> int:
        if epsilon is None:
            return sum(parts.values())
        bound = 1 if measure == ACTIVE else clip
        clipped = sum(min(n, bound) for n in parts.values())
        return max(0, round(clipped + laplace(bound / epsilon, noise)))

    totals: dict[str, int | str] = {}
    tables: dict[str, dict[str, dict[str, int | str]]] = {
        "by_region": {r: {} for r in usage.regions},
        "by_volume": {label: {} for label, _ in VOLUME_BANDS},
    }
    for measure in MEASURES:
        total, cells = _cells(usage, measure)
        shown, hidden = suppress(total, cells, k, dominance)
        totals[measure] = value(total, measure) if shown else SUPPRESSED
        for p, c in cells.items():
            for key, parts in c.items():
                tables[p][str(key)][measure] = SUPPRESSED if key in hidden[p] else value(
                    parts, measure)
    return {"totals": totals, **tables}


def _date(day: object) -> str:
    assert isinstance(day, int)
    return datetime.fromtimestamp(day, UTC).date().isoformat()
