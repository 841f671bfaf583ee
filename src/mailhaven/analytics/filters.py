"""The `filter: {"AND": [{attribute, comparator, values: [{label, value}]}]}` both analytics
endpoints take, and the time and date forms they share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest
from mailhaven.events.query import time_param

COMPARATORS = ("=", "!=", "contains", "not contains")


@dataclass(frozen=True)
class Predicate:
    attribute: str
    comparator: str
    values: tuple[str, ...]

    def matches(self, text: str) -> bool:
        """Whether a name (a domain, a tag) passes this predicate."""
        if self.comparator in ("=", "!="):
            return (text in self.values) == (self.comparator == "=")
        found = any(value.lower() in text.lower() for value in self.values)
        return found == (self.comparator == "contains")


def predicate(attribute: str, comparator: str, values: Iterable[str]) -> Predicate:
    if comparator not in COMPARATORS:
        raise BadRequest(f"Invalid comparator '{comparator}' for '{attribute}': use one of "
                         f"{', '.join(COMPARATORS)}")
    chosen = tuple(dict.fromkeys(v for v in values if v))
    if any("\x00" in v for v in chosen):  # no name holds one; PostgreSQL text can't either
        raise BadRequest(f"Invalid value for '{attribute}': it may not contain a NUL character")
    if not chosen:
        raise BadRequest(f"The filter on '{attribute}' needs at least one value")
    return Predicate(attribute, comparator, chosen)


def on(predicates: Iterable[Predicate], attribute: str) -> list[Predicate]:
    return [p for p in predicates if p.attribute == attribute]


def chosen_domains(session: Session, account_id: str,
                   predicates: Iterable[Predicate]) -> dict[str, str]:
    """The account's domains (id -> name, by name) that the `domain` filters let through:
    another account's domain is never among them, whatever the filter names."""
    rules = on(predicates, "domain")
    return {row.id: row.name for row in session.execute(
        select(Domain.id, Domain.name).where(Domain.account_id == account_id)
        .order_by(Domain.name)) if all(p.matches(row.name) for p in rules)}


def instant(value: str, name: str) -> float | None:
    """An RFC 2822 date (or epoch seconds) as the bodies give it; "" is not given (the SDKs
    send `"start": ""` for a date left out)."""
    return time_param(value.strip(), name) if value.strip() else None


def rfc2822(epoch: float) -> str:
    """The analytics APIs' date form: `Wed, 27 Nov 2024 12:00:00 +0000`."""
    return format_datetime(datetime.fromtimestamp(epoch, UTC))
