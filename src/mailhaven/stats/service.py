"""Count events as they are recorded; answer `stats/total` from the counts."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Insert, func, select
from sqlalchemy.orm import Session

from mailhaven.clock import format_rfc2822, months_before
from mailhaven.controls.service import NO_LIMITS
from mailhaven.controls.service import limits as subject_limits
from mailhaven.errors import BadRequest
from mailhaven.events.query import time_param
from mailhaven.events.service import Recorded
from mailhaven.failure_reasons import FailureReason
from mailhaven.stats import tags
from mailhaven.stats.models import StatCount
from mailhaven.storage.db import dialect_insert

EVENTS = ("accepted", "delivered", "failed", "opened", "clicked", "unsubscribed",
          "complained", "stored")
RESOLUTIONS = ("hour", "day", "month")
MAX_HOURS = 10_000
DEFAULT_SPAN = 7 * 86400
_DURATION = re.compile(r"^(\d{1,7})([hdm])$")
_UNIT_SECONDS = {"h": 3600, "d": 86400}
_UNIT_RESOLUTION = {"h": "hour", "d": "day", "m": "month"}
KIND = "_stats_kind"  # set on a document handed to `count`, never stored: overrides kind_of
_FAILED_PERMANENT = (  # Mailgun's breakdown, in its order
    FailureReason.SUPPRESS_BOUNCE, FailureReason.SUPPRESS_UNSUBSCRIBE,
    FailureReason.SUPPRESS_COMPLAINT, FailureReason.BOUNCE, FailureReason.DELAYED_BOUNCE,
    FailureReason.OLD, FailureReason.GENERIC)


def kind_of(event: str, document: dict) -> str:
    """Which counter of `event` a recorded event adds to (Mailgun's stats breakdown)."""
    if document.get(KIND):
        return document[KIND]
    if event == "accepted":
        return "outgoing"
    if event == "delivered":
        return "smtp"
    if event == "failed":
        reason = document.get("reason") or FailureReason.GENERIC
        if document.get("flags", {}).get("is-delayed-bounce"):
            reason = FailureReason.DELAYED_BOUNCE
        return f"{document.get('severity') or 'permanent'}:{reason}"
    return "total"


def count(session: Session, domain_id: str, recorded: Iterable[tuple[str, list[str], dict]],
          timestamp: float) -> None:
    """Add recorded events (event, tags, document) to the hour's counters, in the caller's
    transaction, for the domain and for each tracked tag: one upsert, plus one indexed read
    when the events carry tags (and an insert on a tag's first use)."""
    hour = int(timestamp // 3600 * 3600)
    events = [(event, {tags.name(t) for t in named}, doc) for event, named, doc in recorded]
    used: set[str] = set().union(*(t for _, t, _ in events))
    kept: set[str] = set()
    if used:  # a refused send names no new tag
        new_ok = set().union(*(t for event, t, _ in events if event != "rejected"))
        kept = tags.tracked(session, domain_id, used, new_ok)
    counts: Counter[tuple[str, str, str]] = Counter()
    for event, event_tags, document in events:
        kind = kind_of(event, document)
        for tag in ("", *(event_tags & kept)):
            counts[(tag, event, kind)] += 1
    if not counts:
        return
    session.execute(_upsert(session.get_bind().dialect.name), [
        {"domain_id": domain_id, "tag": tag, "hour": hour, "event": event, "kind": kind,
         "count": n} for (tag, event, kind), n in sorted(counts.items())])  # one lock order


@functools.cache
def _upsert(dialect: str) -> Insert:
    """Add to a counter, creating it at the first count. Built once per dialect: `excluded`
    builds a copy of the table's columns each time, on every recorded event."""
    statement = dialect_insert(dialect, StatCount)
    return statement.on_conflict_do_update(
        index_elements=["domain_id", "tag", "hour", "event", "kind"],
        set_={"count": StatCount.count + statement.excluded.count})


def bucket(hour: int, resolution: str) -> int:
    """The start of the hour, day or month (UTC) that the hour starting at `hour` is in."""
    when = datetime.fromtimestamp(hour, UTC)
    if resolution == "day":
        when = when.replace(hour=0)
    elif resolution == "month":
        when = when.replace(day=1, hour=0)
    return int(when.timestamp())


def window(*, start: str | None, end: str | None, duration: str | None,
           resolution: str | None, now: float) -> tuple[float, float, str]:
    """Start, end and resolution of a stats query (`stats/total`, `/v1/analytics/metrics`).
    `duration` counts back from `end` in hours, days or calendar months, overrides `start`,
    and gives the resolution unless one is asked for."""
    last = time_param(end, "end") if end else now
    if duration:
        match = _DURATION.match(duration)
        if match is None:
            raise BadRequest("Invalid 'duration' parameter: use e.g. 24h, 7d or 1m")
        n, unit = int(match.group(1)), match.group(2)
        first = months_before(last, n) if unit == "m" else last - n * _UNIT_SECONDS[unit]
        if first is None:
            raise BadRequest("The time range is too long: at most 10000 hours")
        resolution = resolution or _UNIT_RESOLUTION[unit]
    else:
        first = time_param(start, "start") if start else last - DEFAULT_SPAN
    if first > last:
        raise BadRequest("'start' must be before 'end'")
    return first, last, resolution or "day"


def _empty(event: str) -> dict:
    if event == "accepted":
        return {"incoming": 0, "outgoing": 0, "total": 0}
    if event == "delivered":
        return {"smtp": 0, "http": 0, "optimized": 0, "total": 0}
    if event == "failed":
        return {"temporary": {FailureReason.ESPBLOCK: 0, "total": 0},
                "permanent": {**dict.fromkeys(_FAILED_PERMANENT, 0), "total": 0}}
    if event in ("opened", "clicked"):
        return {"total": 0, "unique": 0}
    return {"total": 0}


def totals(session: Session, domain_id: str, *, events: list[str], start: float, end: float,
           resolution: str, tag: str = "") -> list[dict]:
    """One entry per period from `start` to `end` (empty periods included, as Mailgun does).
    An event named twice is counted once: the work grows with events × periods."""
    events = list(dict.fromkeys(events))
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise BadRequest(f"Invalid event: {unknown[0]}")
    if resolution not in RESOLUTIONS:
        raise BadRequest("resolution must be one of hour, day, month")
    if end - start > MAX_HOURS * 3600:
        raise BadRequest("The time range is too long: at most 10000 hours")
    first = bucket(int(start // 3600 * 3600), resolution)  # whole periods, as Mailgun counts
    rows = session.execute(select(StatCount.hour, StatCount.event, StatCount.kind,
                                  StatCount.count).where(
        StatCount.domain_id == domain_id, StatCount.tag == tag,
        StatCount.event.in_(events), StatCount.hour >= first, StatCount.hour <= end)).all()
    periods: dict[int, dict] = {}
    hour = first
    while hour <= end:
        periods.setdefault(bucket(hour, resolution), {e: _empty(e) for e in events})
        hour += 3600
    for hour, event, kind, n in rows:
        stats = periods.setdefault(bucket(hour, resolution),
                                   {e: _empty(e) for e in events})[event]
        if event == "failed":
            severity, _, reason = kind.partition(":")
            counts = stats[severity]
            # Mailgun breaks temporary failures down by `espblock` only; all count in total.
            if severity == "permanent" or reason in counts:
                counts[reason] = counts.get(reason, 0) + n
            counts["total"] += n
        else:
            stats[kind] = stats.get(kind, 0) + n
            if kind != "total":
                stats["total"] += n
    return [{"time": format_rfc2822(t), **periods[t]} for t in sorted(periods)]


def count_recorded(session: Session, recorded: Recorded) -> None:
    """Statistics' events sink: count what was just recorded, in its transaction, for the
    subjects who have not restricted or objected to analytics (N6)."""
    unknown = {index for (_, recipient), index in zip(recorded.copies, recorded.indexes,
                                                      strict=True)
               if recipient.limits is None and index}
    limited = subject_limits(session, recorded.account_id, unknown) if unknown else {}
    kind = recorded.stats_kind
    count(session, recorded.domain_id, [
        (recorded.event, facts.tags, {**doc, KIND: kind} if kind else doc)
        for (facts, recipient), doc, index in zip(recorded.copies, recorded.documents,
                                                  recorded.indexes, strict=True)
        if (recipient.limits or limited.get(index or "", NO_LIMITS)).may_analyse],
        recorded.timestamp)


def series(session: Session, domain_ids: list[str], *, events: tuple[str, ...], start: float,
           end: float, resolution: str) -> list[tuple[int, dict[str, int]]]:
    """Each period's count of each event, summed over several domains (an account's
    overview): one entry per period from `start` to `end`, empty periods included."""
    first = bucket(int(start // 3600 * 3600), resolution)
    periods: dict[int, dict[str, int]] = {}
    hour = first
    while hour <= end:
        periods.setdefault(bucket(hour, resolution), dict.fromkeys(events, 0))
        hour += 3600
    if domain_ids:
        rows = session.execute(select(StatCount.hour, StatCount.event, func.sum(
            StatCount.count)).where(
            StatCount.domain_id.in_(domain_ids), StatCount.tag == "",
            StatCount.event.in_(events), StatCount.hour >= first, StatCount.hour <= end)
            .group_by(StatCount.hour, StatCount.event))
        for hour, event, n in rows:
            periods.setdefault(bucket(hour, resolution), dict.fromkeys(events, 0))[event] += n
    return sorted(periods.items())


def failure_kinds(session: Session, domain_ids: list[str],
                  since: float) -> list[tuple[str, str, int]]:
    """(severity, reason, count) of the domains' failures since `since`, the most frequent
    first: the counters keep Mailgun's reason of every failure, nothing to decrypt."""
    if not domain_ids:
        return []
    rows = session.execute(select(StatCount.kind, func.sum(StatCount.count)).where(
        StatCount.domain_id.in_(domain_ids), StatCount.tag == "", StatCount.event == "failed",
        StatCount.hour >= int(since // 3600 * 3600)).group_by(StatCount.kind))
    found = [(*kind.partition(":")[::2], int(n)) for kind, n in rows]
    return sorted(found, key=lambda row: (-row[2], row[0], row[1]))
