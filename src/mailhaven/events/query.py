"""The Events API query: filters, a time range, and keyset paging both ways.

A page's links carry an opaque token (the query plus a pivot event), so following `next`
or `previous` walks the range without gaps or repeats even while new events arrive.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from mailhaven.clock import parse_rfc2822
from mailhaven.errors import BadRequest
from mailhaven.events.models import Event
from mailhaven.events.service import open_json, open_payload
from mailhaven.storage.base import table
from mailhaven.vault import Vault

MAX_LIMIT = 300
DEFAULT_LIMIT = 100
FILTERS = ("event", "recipient", "tags", "message-id", "severity")
# Mailgun's other filters: refused rather than ignored, which would answer with everything.
UNSUPPORTED_FILTERS = ("from", "to", "subject", "recipients", "attachment", "size", "list")
_MAC_LENGTH = 20
_BLIND_INDEX = re.compile(r"[0-9a-f]{64}")
LATEST = 2**33  # epoch seconds, the year 2242: later times are typing errors
# What a page reads of each event: its place (the links' pivots), what opens it, and the
# storage key its JSON names (its storage url).
# The events table's columns, not the mapped class's attributes: a statement of them runs
# on the Core path, without the ORM's steps around each execution and row.
_E = table(Event).c
PAGE_COLUMNS = (_E.id, _E.timestamp, _E.event_id, _E.key_id, _E.storage_key, _E.payload)


@dataclass(frozen=True)
class Pivot:
    timestamp: float
    id: int
    inclusive: bool = False


@dataclass(frozen=True)
class EventQuery:
    ascending: bool
    begin: float | None
    end: float | None
    limit: int
    filters: dict[str, str] = field(default_factory=dict)
    backward: bool = False  # read towards the start of the range ("previous", "last")
    pivot: Pivot | None = None

    def token(self, vault: Vault) -> str:
        """The query, opaque and signed: a client can follow it, not forge or widen it."""
        raw = json.dumps(asdict(self), separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{body}.{vault.token_mac(body, _MAC_LENGTH)}"

    @classmethod
    def from_token(cls, token: str, vault: Vault, account_id: str) -> EventQuery:
        body, _, mac = token.partition(".")
        if not hmac.compare_digest(mac.encode(), vault.token_mac(body, _MAC_LENGTH).encode()):
            raise BadRequest("Invalid page token")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        pivot = Pivot(**data.pop("pivot")) if data.get("pivot") else None
        filters = data.pop("filters", {})
        given = filters.get("message-id")
        if given and not _BLIND_INDEX.fullmatch(given):  # a link made before 0017: the id
            filters["message-id"] = vault.message_index(account_id, given)
        return cls(**{**data, "filters": filters, "pivot": pivot})


def time_param(value: str, name: str) -> float:
    """A time given as epoch seconds or an RFC 2822 date, as Mailgun's APIs accept both."""
    try:
        when: float | None = float(value)
    except ValueError:
        when = parse_rfc2822(value)
    if when is None or not 0 <= when < LATEST:  # also refuses nan and inf
        raise BadRequest(f"Invalid '{name}' parameter: {value}")
    return when


def parse_query(params: dict[str, str], vault: Vault, account_id: str) -> EventQuery:
    """The query in `params`; recipient and Message-ID filters are kept only as their blind
    indexes, so neither travels in the page links."""
    unsupported = [k for k in UNSUPPORTED_FILTERS if k in params]
    if unsupported:
        raise BadRequest(f"Filter '{unsupported[0]}' is not supported")
    begin = time_param(params["begin"], "begin") if params.get("begin") else None
    end = time_param(params["end"], "end") if params.get("end") else None
    asc_param = params.get("ascending")
    if asc_param is not None:
        if asc_param not in ("yes", "no", "true", "false"):
            raise BadRequest("Invalid 'ascending' parameter: must be yes or no")
        ascending = asc_param in ("yes", "true")
    elif begin is not None and end is not None:
        ascending = begin <= end
    else:
        ascending = begin is not None
    try:
        limit = int(params.get("limit") or DEFAULT_LIMIT)
    except ValueError as exc:
        raise BadRequest("Invalid 'limit' parameter") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"'limit' must be between 1 and {MAX_LIMIT}")
    filters = {k: params[k] for k in FILTERS if params.get(k)}
    if "recipient" in filters:
        filters["recipient"] = vault.blind_index(account_id, filters["recipient"])
    if "message-id" in filters:
        filters["message-id"] = vault.message_index(account_id, filters["message-id"])
    return EventQuery(ascending=ascending, begin=begin, end=end, limit=limit, filters=filters)


def _word_filter(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    """`a OR b`, `NOT a`, `a b` (either): the subset of Mailgun's filter syntax we honour."""
    include: list[str] = []
    exclude: list[str] = []
    negate = False
    for word in value.replace("(", " ").replace(")", " ").split():
        if word.upper() in ("OR", "AND"):
            continue
        if word.upper() == "NOT":
            negate = True
            continue
        (exclude if negate else include).append(word.strip('"'))
        negate = False
    clauses = []
    if include:
        clauses.append(column.in_(include))
    if exclude:
        clauses.append(column.not_in(exclude))
    return and_(*clauses)


def _conditions(query: EventQuery, account_id: str, domain_id: str | None) -> list:
    lo, hi = (query.begin, query.end) if query.ascending else (query.end, query.begin)
    # An event whose key was erased can't be read: leave it out here, not after LIMIT.
    conds = [_E.account_id == account_id, _E.key_id.is_not(None)]
    if domain_id is not None:  # None: every domain of the account (the panel's logs)
        conds.append(_E.domain_id == domain_id)
    if lo is not None:
        conds.append(_E.timestamp >= lo)
    if hi is not None:
        conds.append(_E.timestamp <= hi)
    f = query.filters
    if "event" in f:
        conds.append(_word_filter(_E.event, f["event"]))
    if "severity" in f:
        conds.append(_word_filter(_E.severity, f["severity"]))
    if "recipient" in f:
        conds.append(_E.recipient_index == f["recipient"])  # already a blind index
    if "message-id" in f:
        conds.append(_E.message_id_index == f["message-id"])  # a blind index too
    if "tags" in f:
        tags = [t for t in f["tags"].split() if t.upper() not in ("OR", "AND")]
        conds.append(or_(*(_E.tags.contains(json.dumps(t), autoescape=True) for t in tags)))
    return conds


def _pivot_condition(query: EventQuery) -> ColumnElement[bool]:
    pivot = query.pivot
    assert pivot is not None
    key, at = tuple_(_E.timestamp, _E.id), tuple_(pivot.timestamp, pivot.id)
    later = query.ascending != query.backward  # reading towards larger keys
    if later:
        return key >= at if pivot.inclusive else key > at
    return key <= at if pivot.inclusive else key < at


T = TypeVar("T", dict, bytes)
Links = tuple["EventQuery", "EventQuery", "EventQuery", "EventQuery"]  # next, previous, first, last


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]  # decoded events (the panel) or their JSON documents (the API)
    next: EventQuery
    previous: EventQuery
    first: EventQuery
    last: EventQuery


def page_statement(query: EventQuery, account_id: str, domain_id: str | None) -> Select:
    """The SELECT of one page's rows (the benchmarks run it directly, as the reference)."""
    conds = _conditions(query, account_id, domain_id)
    if query.pivot is not None:
        conds.append(_pivot_condition(query))
    towards_larger = query.ascending != query.backward
    order = (_E.timestamp.asc(), _E.id.asc()) if towards_larger else (
        _E.timestamp.desc(), _E.id.desc())
    return select(*PAGE_COLUMNS).where(*conds).order_by(*order).limit(query.limit)


def _page_rows(session: Session, account_id: str, domain_id: str | None,
               query: EventQuery) -> tuple[list[Any], Links]:
    # Rows, not ORM objects (a third of a page's time), of the page's columns only; all
    # fetched at once (iterating the result fetches them one by one).
    rows = list(session.execute(page_statement(query, account_id, domain_id)).all())
    if query.backward:
        rows.reverse()  # pages are always shown in the query's own order
    start = replace(query, backward=False, pivot=None)
    first, last = start, replace(start, backward=True)
    if rows:
        nxt = replace(start, pivot=Pivot(rows[-1].timestamp, rows[-1].id))
        prev = replace(start, backward=True, pivot=Pivot(rows[0].timestamp, rows[0].id))
    elif query.pivot is None:
        nxt, prev = (first, last) if not query.backward else (first, query)
    elif query.backward:  # ran off the start: next resumes at the pivot itself
        nxt = replace(start, pivot=replace(query.pivot, inclusive=not query.pivot.inclusive))
        prev = query
    else:  # ran off the end: poll here; previous includes the pivot
        nxt = query
        prev = replace(query, backward=True,
                       pivot=replace(query.pivot, inclusive=not query.pivot.inclusive))
    return rows, (nxt, prev, first, last)


def fetch(session: Session, vault: Vault, account_id: str, domain_id: str | None,
          query: EventQuery) -> Page[dict]:
    """One page of the query's events, each decoded (the panel's logs)."""
    rows, links = _page_rows(session, account_id, domain_id, query)
    return Page(open_payload(session, vault, rows), *links)


def fetch_json(session: Session, vault: Vault, account_id: str, domain_id: str | None,
               query: EventQuery, messages_url: str) -> Page[bytes]:
    """One page of the query's events as their JSON bytes, `storage.url` under
    `messages_url` (the Events API: see `events.service.open_json`)."""
    rows, links = _page_rows(session, account_id, domain_id, query)
    sealed = [(event_id, key_id, storage_key, payload)
              for _, _, event_id, key_id, storage_key, payload in rows]  # PAGE_COLUMNS
    return Page(open_json(session, vault, sealed, messages_url), *links)


def newer(session: Session, vault: Vault, account_id: str, domain_id: str | None,
          query: EventQuery, after_id: int) -> tuple[list[dict], int]:
    """The query's events stored after the row `after_id`, oldest first, and the last row id
    read (`after_id` when none): what a live tail polls for. The time range is ignored."""
    conds = _conditions(replace(query, begin=None, end=None), account_id, domain_id)
    rows = list(session.execute(select(*Event.__table__.columns).where(
        *conds, _E.id > after_id).order_by(_E.id).limit(query.limit)))
    return open_payload(session, vault, rows), (rows[-1].id if rows else after_id)


def latest_id(session: Session) -> int:
    """The newest event row id (0 when none): where a live tail starts. Any account's (one
    read of the primary key's end) — every event recorded later has a larger id."""
    return int(session.scalar(select(func.max(Event.id))) or 0)


def of_message(session: Session, vault: Vault, account_id: str,
               storage_key: str) -> list[dict]:
    """Every readable event of one stored message of the account, in the order they
    happened: its timeline."""
    rows = list(session.execute(select(*Event.__table__.columns).where(
        Event.storage_key == storage_key, Event.account_id == account_id,
        Event.key_id.is_not(None)).order_by(Event.timestamp, Event.id)))
    return open_payload(session, vault, rows)


def failure_replies(session: Session, vault: Vault, account_id: str, domain_ids: list[str],
                    since: float, *, sample: int = 200, top: int = 5,
                    window: int = 5000) -> list[tuple[str, int]]:
    """The SMTP replies (or reasons) the latest failures since `since` carried, the most
    frequent first: a bounce reason in the receiver's own words. Only among each domain's
    latest `window` events, read off its time index: a page must not scan millions of
    events to find failures that may not exist (the counters say how many there were)."""
    rows: list[Any] = []
    for domain_id in domain_ids:
        latest = (select(Event.id).where(Event.domain_id == domain_id)
                  .order_by(Event.domain_id, Event.timestamp.desc(), Event.id.desc())
                  .limit(window).scalar_subquery())
        rows += session.execute(select(*Event.__table__.columns).where(
            Event.id.in_(latest), Event.account_id == account_id, Event.event == "failed",
            Event.timestamp >= since, Event.key_id.is_not(None))
            .order_by(Event.timestamp.desc(), Event.id.desc()).limit(sample))
    rows = sorted(rows, key=lambda row: (row.timestamp, row.id), reverse=True)[:sample]
    replies: Counter[str] = Counter()
    for doc in open_payload(session, vault, rows):
        status = doc.get("delivery-status") or {}
        said = status.get("message") or status.get("description") or doc.get("reason") or ""
        parts = (status.get("code"), status.get("enhanced-code"), said)
        replies[" ".join(str(p) for p in parts if p)[:200] or "unknown"] += 1
    return replies.most_common(top)
