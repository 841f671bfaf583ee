"""`POST /v1/analytics/metrics`, answered from the hourly counters (stats): Mailgun's counts
and rates that those counters can tell honestly, by time, domain and tag. The counters hold
no personal data, and leave out recipients who restricted or objected to analytics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.analytics.filters import Predicate, chosen_domains, on, rfc2822
from mailhaven.errors import BadRequest
from mailhaven.failure_reasons import FailureReason as R
from mailhaven.stats import service as stats
from mailhaven.stats.models import StatCount

Counts = Counter[tuple[str, str]]  # (event, counter kind) -> events, as stats records them
Key = tuple[int | str, ...]  # an item's dimension values: a period's start, a domain, a tag
DIMENSIONS = ("time", "domain", "tag")
FILTERS = ("domain", "tag")
RESOLUTIONS = ("hour", "day", "month")
MAX_DIMENSIONS = 3
DEFAULT_LIMIT = MAX_LIMIT = 1500  # what Mailgun answers with when no limit is asked for
_SUPPRESSED = (R.SUPPRESS_BOUNCE, R.SUPPRESS_UNSUBSCRIBE, R.SUPPRESS_COMPLAINT,
               R.SUPPRESS_RESTRICTION, R.SUPPRESS_OBJECTION)

# Mailgun's dimensions and filters we keep no counters by, and why (a 400 says so).
UNSUPPORTED_DIMENSIONS = {
    "ip": "sending IPs", "ip_pool": "IP pools", "subaccount": "subaccounts",
    "recipient_domain": "recipients' domains", "recipient_provider": "mailbox providers",
    "country": "recipients' countries", "device": "recipients' devices",
    "bot": "recipients' bots"}
# Mailgun's metrics the counters can't tell: they count events, not attempts or optimizations.
UNSUPPORTED_METRICS = {
    "delivered_optimized_count": "send time optimization",
    "permanent_failed_optimized_count": "send time optimization",
    "webhook_count": "failed callbacks", "rate_limit_count": "rate-limited messages",
    "delivered_first_attempt_count": "delivery attempts",
    "delayed_first_attempt_count": "delivery attempts",
    "delivered_two_plus_attempts_count": "delivery attempts",
    "delayed_rate": "delivery attempts", "delayed_first_attempt_rate": "delivery attempts"}


def _n(counts: Counts, event: str, kind: str | None = None) -> int:
    return sum(n for (e, k), n in counts.items() if e == event and kind in (None, k))


def _failed(counts: Counts, severity: str, reasons: Iterable[str] | None = None) -> int:
    wanted = None if reasons is None else {f"{severity}:{r}" for r in reasons}
    return sum(n for (e, k), n in counts.items() if e == "failed"
               and (k.startswith(f"{severity}:") if wanted is None else k in wanted))


def _sent(c: Counts) -> int:  # Mailgun: delivered + permanent failures - suppressions
    return _n(c, "delivered") + _failed(c, "permanent") - _failed(c, "permanent", _SUPPRESSED)


def _processed(c: Counts) -> int:  # Mailgun: delivered + permanent - delayed bounces
    return _n(c, "delivered") + _failed(c, "permanent") - _failed(c, "permanent",
                                                                   [R.DELAYED_BOUNCE])


COUNTS: dict[str, Callable[[Counts], int]] = {
    "accepted_count": lambda c: _n(c, "accepted"),
    "accepted_outgoing_count": lambda c: _n(c, "accepted", "outgoing"),
    "accepted_incoming_count": lambda c: _n(c, "accepted", "incoming"),
    "delivered_count": lambda c: _n(c, "delivered"),
    "delivered_smtp_count": lambda c: _n(c, "delivered", "smtp"),
    "delivered_http_count": lambda c: _n(c, "delivered", "http"),
    "sent_count": _sent,
    "processed_count": _processed,
    "failed_count": lambda c: _n(c, "failed"),
    "permanent_failed_count": lambda c: _failed(c, "permanent"),
    "temporary_failed_count": lambda c: _failed(c, "temporary"),
    "temporary_failed_esp_block_count": lambda c: _failed(c, "temporary", [R.ESPBLOCK]),
    "permanent_failed_esp_block_count": lambda c: _failed(c, "permanent", [R.ESPBLOCK]),
    "permanent_failed_old_count": lambda c: _failed(c, "permanent", [R.OLD]),
    "bounced_count": lambda c: _failed(c, "permanent") - _failed(c, "permanent", _SUPPRESSED),
    "hard_bounces_count": lambda c: _failed(c, "permanent", [R.BOUNCE]),
    "soft_bounces_count": lambda c: _failed(c, "permanent",
                                            [R.GENERIC, R.GREYLISTED, R.ESPBLOCK]),
    "delayed_bounce_count": lambda c: _failed(c, "permanent", [R.DELAYED_BOUNCE]),
    "suppressed_bounces_count": lambda c: _failed(c, "permanent", [R.SUPPRESS_BOUNCE]),
    "suppressed_unsubscribed_count": lambda c: _failed(c, "permanent",
                                                       [R.SUPPRESS_UNSUBSCRIBE]),
    "suppressed_complaints_count": lambda c: _failed(c, "permanent", [R.SUPPRESS_COMPLAINT]),
    "opened_count": lambda c: _n(c, "opened"),
    "unique_opened_count": lambda c: _n(c, "opened", "unique"),
    "clicked_count": lambda c: _n(c, "clicked"),
    "unique_clicked_count": lambda c: _n(c, "clicked", "unique"),
    "unsubscribed_count": lambda c: _n(c, "unsubscribed"),
    "complained_count": lambda c: _n(c, "complained"),
    "stored_count": lambda c: _n(c, "stored"),
}
# Mailgun's rate definitions (documentation: reporting/rate-definitions): a count over a count.
RATES: dict[str, tuple[str, str]] = {
    "delivered_rate": ("delivered_count", "sent_count"),
    "opened_rate": ("opened_count", "delivered_count"),
    "clicked_rate": ("clicked_count", "delivered_count"),
    "unique_opened_rate": ("unique_opened_count", "delivered_count"),
    "unique_clicked_rate": ("unique_clicked_count", "delivered_count"),
    "unsubscribed_rate": ("unsubscribed_count", "delivered_count"),
    "complained_rate": ("complained_count", "delivered_count"),
    "bounce_rate": ("bounced_count", "processed_count"),
    "permanent_fail_rate": ("permanent_failed_count", "processed_count"),
    "temporary_fail_rate": ("temporary_failed_count", "processed_count"),
}


def value(metric: str, counts: Counts) -> int | str:
    """A count, or a rate as Mailgun writes it: a ratio with four decimals ("0.8333")."""
    if metric in COUNTS:
        return COUNTS[metric](counts)
    numerator, denominator = (COUNTS[m](counts) for m in RATES[metric])
    return f"{numerator / denominator if denominator else 0:.4f}"


@dataclass(frozen=True)
class MetricsQuery:
    start: float
    end: float
    resolution: str
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    filters: tuple[Predicate, ...] = ()
    sort: str = ""
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    aggregates: bool = False
    duration: str = field(default="", compare=False)


def check(query: MetricsQuery) -> None:
    """Everything asked for is something the counters can tell, or a 400 that says why."""
    if query.resolution not in RESOLUTIONS:
        raise BadRequest("resolution must be one of hour, day, month")
    if query.end - query.start > stats.MAX_HOURS * 3600:
        raise BadRequest(f"The time range is too long: at most {stats.MAX_HOURS} hours")
    if not query.metrics:
        raise BadRequest("metrics: name at least one metric")
    for metric in query.metrics:
        if metric in UNSUPPORTED_METRICS:
            raise BadRequest(f"Metric '{metric}' is not supported: Mailhaven's counters "
                             f"don't record {UNSUPPORTED_METRICS[metric]}")
        if metric not in COUNTS and metric not in RATES:
            raise BadRequest(f"Invalid metric '{metric}'")
    if len(query.dimensions) > MAX_DIMENSIONS:
        raise BadRequest(f"At most {MAX_DIMENSIONS} dimensions")
    for name in (*query.dimensions, *(p.attribute for p in query.filters)):
        if name in UNSUPPORTED_DIMENSIONS:
            raise BadRequest(f"'{name}' is not supported: Mailhaven keeps no counters by "
                             f"{UNSUPPORTED_DIMENSIONS[name]}")
    for name in query.dimensions:
        if name not in DIMENSIONS:
            raise BadRequest(f"Invalid dimension '{name}'")
    for name in (p.attribute for p in query.filters):
        if name not in FILTERS:
            raise BadRequest(f"Invalid filter attribute '{name}'")
    tags = on(query.filters, "tag")
    if tags and "tag" not in query.dimensions and not (
            len(tags) == 1 and tags[0].comparator == "=" and len(tags[0].values) == 1):
        raise BadRequest("Without the tag dimension a tag filter must name one tag with '=': "
                         "an event with several of the tags would be counted once for each")
    if not 1 <= query.limit <= MAX_LIMIT or query.skip < 0:
        raise BadRequest(f"pagination: limit must be from 1 to {MAX_LIMIT}, skip at least 0")
    key, direction = _sort(query)
    if query.sort and (key not in (*query.dimensions, *query.metrics)
                       or direction not in ("", "asc", "desc")):
        raise BadRequest(f"Invalid sort '{query.sort}': use a dimension or a metric asked "
                         "for, then :asc or :desc")


def _rows(session: Session, account_id: str, query: MetricsQuery,
          ) -> tuple[dict[str, str], list[tuple[int, str, str, str, str, int]]]:
    """The account's domains (id -> name) the filters let through, and their counters."""
    domains = chosen_domains(session, account_id, query.filters)
    tags = on(query.filters, "tag")
    statement = select(StatCount.hour, StatCount.domain_id, StatCount.tag, StatCount.event,
                       StatCount.kind, StatCount.count).where(
        StatCount.domain_id.in_(domains),
        StatCount.hour >= _period(query.start, query.resolution),
        StatCount.hour <= query.end)
    if "tag" in query.dimensions:
        statement = statement.where(StatCount.tag != "")
    else:  # the whole domain's counters, or the one tag's
        statement = statement.where(StatCount.tag == (tags[0].values[0] if tags else ""))
    rows = [(hour, domain_id, tag, event, kind, n)
            for hour, domain_id, tag, event, kind, n in session.execute(statement)
            if "tag" not in query.dimensions or all(p.matches(tag) for p in tags)]
    return domains, rows


def compute(session: Session, account_id: str, query: MetricsQuery) -> dict[str, Any]:
    """Mailgun's metrics response: one item per combination of dimension values that has
    counts (an hour, day or month with nothing in it is left out, as Mailgun does)."""
    check(query)
    domains, rows = _rows(session, account_id, query)
    groups: dict[Key, Counts] = {}
    everything: Counts = Counter()
    for hour, domain_id, tag, event, kind, n in rows:
        parts: dict[str, int | str] = {"time": stats.bucket(hour, query.resolution),
                                       "domain": domains[domain_id], "tag": tag}
        groups.setdefault(tuple(parts[d] for d in query.dimensions), Counter())[
            (event, kind)] += n
        everything[(event, kind)] += n
    keys = sorted(groups)  # each position holds one type: times, or names
    by, direction = _sort(query)
    if by:
        keys.sort(key=lambda key: _sort_key(query, by, key, groups[key]),
                  reverse=direction == "desc")
    items = [{"dimensions": [_dimension(d, v) for d, v in zip(query.dimensions, key,
                                                                strict=True)],
              "metrics": {m: value(m, groups[key]) for m in query.metrics}}
             for key in keys[query.skip:query.skip + query.limit]]
    return {
        "start": rfc2822(_period(query.start, query.resolution)),
        "end": rfc2822(_period(query.end, query.resolution)),
        "resolution": query.resolution, "duration": query.duration,
        "dimensions": list(query.dimensions),
        "pagination": {"sort": query.sort, "skip": query.skip, "limit": query.limit,
                       "total": len(keys)},
        "items": items,
        "aggregates": {"metrics": {m: value(m, everything) for m in query.metrics}
                       if query.aggregates else {}},
    }


def _period(epoch: float, resolution: str) -> int:
    """The start of the hour, day or month `epoch` is in."""
    return stats.bucket(int(epoch // 3600 * 3600), resolution)


def _dimension(name: str, raw: int | str) -> dict[str, str]:
    shown = rfc2822(raw) if name == "time" and isinstance(raw, int) else str(raw)
    return {"dimension": name, "value": shown, "display_value": shown}


def _sort(query: MetricsQuery) -> tuple[str, str]:
    """The sort's key and direction; `timestamp` is the `time` dimension (Mailgun's own
    examples sort by `timestamp:asc`)."""
    key, _, direction = query.sort.partition(":")
    return ("time" if key == "timestamp" else key), direction


def _sort_key(query: MetricsQuery, by: str, key: Key, counts: Counts) -> int | str | float:
    if by in query.dimensions:
        return key[query.dimensions.index(by)]
    metric = value(by, counts)
    return float(metric) if isinstance(metric, str) else metric
