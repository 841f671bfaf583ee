"""`POST /v1/analytics/logs`: the account's events (all its domains, or those the filter
names) in Mailgun's log item shape, opened through the vault as the Events API opens them:
an erased recipient's events are gone from here too. Pages are keyset pages behind signed
tokens, so a client can follow them but not forge or widen them."""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailhaven.analytics.filters import Predicate, chosen_domains, rfc2822
from mailhaven.clock import iso8601
from mailhaven.errors import BadRequest
from mailhaven.events.models import Event
from mailhaven.events.service import open_payload, with_storage_urls
from mailhaven.vault import Vault

EVENTS = ("accepted", "rejected", "delivered", "failed", "opened", "clicked", "unsubscribed",
          "complained", "stored")
DEFAULT_LIMIT = MAX_LIMIT = 100  # Mailgun: "The maximum number of items returned (100 max)"
DEFAULT_SPAN = 86_400.0  # Mailgun: start defaults to a day before the end
SORTS = {"timestamp:asc": True, "timestamp:desc": False}  # ascending?
DEFAULT_SORT = "timestamp:desc"
EXACT = ("=", "!=")
# attribute -> (the comparators it takes, the column it reads)
FILTERS: dict[str, tuple[tuple[str, ...], InstrumentedAttribute[str | None] | None]] = {
    "event": (EXACT, Event.event),
    "severity": (EXACT, Event.severity),
    "recipient": (EXACT, Event.recipient_index),  # a blind index: equality only
    "message_id": (EXACT, Event.message_id_index),
    "id": (EXACT, Event.event_id),
    "tag": (EXACT, None),
    "domain": (("=", "!=", "contains", "not contains"), None),
}
# Mailgun's other filters: refused, since ignoring one would answer with too much.
UNSUPPORTED = {
    **dict.fromkeys(("from", "to", "subject", "recipients", "attachment_filename",
                     "user_variables", "delivery_status_message", "mailing_list_address"),
                    "that text is sealed with the event, so it can't be searched"),
    **dict.fromkeys(("ip", "ip_pool", "recipient_domain", "recipient_provider", "country",
                     "bot", "device", "subaccount", "size", "delivery_status_code",
                     "is_routed", "i_classification_rule_id"), "no such column is kept")}
INVALID_PAGE = "Invalid page token"
_MAC_LENGTH = 20
_MAC_CONTEXT = "logs:"


@dataclass(frozen=True)
class LogsQuery:
    """A logs query as its pages carry it: recipient and Message-ID values are blind
    indexes already, so no address travels in a token."""

    start: float
    end: float
    events: tuple[str, ...] = ()
    filters: tuple[Predicate, ...] = ()
    ascending: bool = False
    limit: int = DEFAULT_LIMIT
    totals: bool = False


def prepare(vault: Vault, account_id: str, query: LogsQuery) -> LogsQuery:
    """The query checked, with the recipient and Message-ID filters made blind indexes."""
    if query.start > query.end:
        raise BadRequest("'start' must be before 'end'")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise BadRequest(f"pagination.limit must be from 1 to {MAX_LIMIT}")
    unknown = [e for e in query.events if e not in EVENTS]
    if unknown:
        raise BadRequest(f"Invalid event '{unknown[0]}'")
    filters = []
    for p in query.filters:
        if p.attribute in UNSUPPORTED:
            raise BadRequest(f"Filtering by '{p.attribute}' is not supported: "
                             f"{UNSUPPORTED[p.attribute]}")
        if p.attribute not in FILTERS:
            raise BadRequest(f"Invalid filter attribute '{p.attribute}'")
        if p.comparator not in FILTERS[p.attribute][0]:
            raise BadRequest(f"'{p.attribute}' takes the comparators "
                             f"{', '.join(FILTERS[p.attribute][0])}")
        if p.attribute == "recipient":
            p = replace(p, values=tuple(vault.blind_index(account_id, v) for v in p.values))
        elif p.attribute == "message_id":
            p = replace(p, values=tuple(vault.message_index(account_id, v.strip("<>"))
                                        for v in p.values))
        filters.append(p)
    return replace(query, filters=tuple(filters))


@dataclass(frozen=True)
class Page:
    query: LogsQuery
    after: tuple[float, int] | None = None  # the (timestamp, row id) the page starts past
    backward: bool = False  # read towards the start ("previous")

    def token(self, vault: Vault, account_id: str) -> str:
        raw = json.dumps({"account": account_id, **asdict(self)}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return f"{body}.{vault.token_mac(_MAC_CONTEXT + body, _MAC_LENGTH)}"

    @classmethod
    def from_token(cls, token: str, vault: Vault, account_id: str) -> Page:
        body, _, mac = token.partition(".")
        if not hmac.compare_digest(mac.encode(),
                                   vault.token_mac(_MAC_CONTEXT + body, _MAC_LENGTH).encode()):
            raise BadRequest(INVALID_PAGE)
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if data.pop("account") != account_id:  # another account's page: not this one's
            raise BadRequest(INVALID_PAGE)
        query = data["query"]
        query["events"] = tuple(query["events"])
        query["filters"] = tuple(Predicate(p["attribute"], p["comparator"], tuple(p["values"]))
                                 for p in query["filters"])
        after = data["after"]
        return cls(LogsQuery(**query), after=(after[0], after[1]) if after else None,
                   backward=bool(data["backward"]))


def _matching(p: Predicate) -> ColumnElement[bool]:
    column = FILTERS[p.attribute][1]
    if p.attribute == "tag":
        found = or_(*(Event.tags.contains(json.dumps(t), autoescape=True) for t in p.values))
        return found if p.comparator == "=" else not_(found)
    assert column is not None
    if p.comparator == "=":
        return column.in_(p.values)
    return or_(column.is_(None), column.not_in(p.values))


def _conditions(query: LogsQuery, account_id: str,
                domain_ids: list[str]) -> list[ColumnElement[bool]]:
    # An event whose key was erased can't be read: left out here, not after LIMIT.
    conds = [Event.account_id == account_id, Event.domain_id.in_(domain_ids),
             Event.key_id.is_not(None), Event.timestamp >= query.start,
             Event.timestamp <= query.end]
    if query.events:
        conds.append(Event.event.in_(query.events))
    conds += [_matching(p) for p in query.filters if p.attribute != "domain"]
    return conds


def fetch(session: Session, vault: Vault, account_id: str, page: Page,
          base_url: str) -> dict[str, Any]:
    """One page in Mailgun's logs response shape."""
    query = page.query
    names = chosen_domains(session, account_id, query.filters)
    conds = _conditions(query, account_id, list(names))
    later = query.ascending != page.backward  # reading towards later events
    key = tuple_(Event.timestamp, Event.id)
    where = conds if page.after is None else [
        *conds, key > tuple_(*page.after) if later else key < tuple_(*page.after)]
    order = (Event.timestamp.asc(), Event.id.asc()) if later else (Event.timestamp.desc(),
                                                                   Event.id.desc())
    rows = list(session.execute(select(*Event.__table__.columns).where(and_(*where))
                                .order_by(*order).limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    if page.backward:
        rows.reverse()
    domain_of = {row.event_id: names[row.domain_id] for row in rows}
    items = [log_item(doc, account_id, domain_of[doc["id"]], base_url)
             for doc in open_payload(session, vault, rows)]
    paging: dict[str, object] = {}
    if rows and (more if not page.backward else True):
        paging["next"] = Page(query, (rows[-1].timestamp, rows[-1].id)).token(vault, account_id)
    if rows and (more if page.backward else page.after is not None):
        paging["previous"] = Page(query, (rows[0].timestamp, rows[0].id),
                                  backward=True).token(vault, account_id)
    if paging or page.after is not None:
        paging["first"] = Page(query).token(vault, account_id)
    aggregates: dict[str, object] = {}
    if query.totals:
        paging["total"] = aggregates["all"] = session.scalar(
            select(func.count()).select_from(Event).where(and_(*conds))) or 0
    return {"start": rfc2822(query.start), "end": rfc2822(query.end), "items": items,
            "pagination": paging, "aggregates": aggregates}


def log_item(document: dict[str, Any], account_id: str, domain_name: str,
             base_url: str) -> dict[str, Any]:
    """An Events API document as a log item: `@timestamp` (ISO 8601, milliseconds) for
    `timestamp`, the account and domain as objects, `user-variables` as a JSON string and
    `storage.url` a list, as in Mailgun's recorded responses."""
    with_storage_urls([document], base_url, domain_name)
    item = {k: v for k, v in document.items() if k != "timestamp"}
    item["@timestamp"] = iso8601(document["timestamp"], timespec="milliseconds", zulu=True)
    item["account"] = {"id": account_id}
    item["domain"] = {"name": domain_name}
    item["user-variables"] = json.dumps(document.get("user-variables") or {})
    item["flags"] = {**document.get("flags", {}), "is-callback": False}
    if isinstance(item.get("method"), str):
        item["method"] = item["method"].upper()
    if "storage" in item:
        item["storage"] = {**item["storage"], "url": [item["storage"]["url"]]}
    return item
