"""The export's categories: name → rows, registered once, so adding one is one decorator."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Select
from sqlalchemy.orm import Session

from mailhaven.clock import SYSTEM_CLOCK
from mailhaven.vault import Vault, VaultKey

ACCOUNT_HOLDER, RECIPIENT = "account holder", "recipient"
BOTH = (ACCOUNT_HOLDER, RECIPIENT)
BATCH = 1000  # rows read, opened and written at a time


@dataclass(frozen=True)
class Recipient:
    """A recipient as the export finds them: by blind index, and by their subject key if it
    still exists (an erased key leaves only rows that can no longer be opened)."""

    address: str  # normalised
    index: str
    key: VaultKey | None


@dataclass(frozen=True)
class Scope:
    """What a category reads from: one account, and within it one recipient or everything."""

    session: Session
    vault: Vault
    account_id: str
    recipient: Recipient | None = None
    hostname: str | None = None  # the MTA's name, for the DNS records domains must publish
    register: Session | None = None  # the main database's (sub-processors); None: `session`
    now: float = field(default_factory=SYSTEM_CLOCK.now)  # the export's time

    @property
    def main(self) -> Session:
        return self.register if self.register is not None else self.session

    @property
    def subject(self) -> str:
        return ACCOUNT_HOLDER if self.recipient is None else RECIPIENT


Rows = Callable[[Scope], Iterable[dict]]


@dataclass(frozen=True)
class Category:
    name: str
    rows: Rows
    columns: tuple[str, ...]  # the CSV header, and every key a row may have
    subjects: tuple[str, ...]
    count: Callable[[Scope], int] | None = None  # for progress; small categories are listed
    open_ended: bool = False  # rows may carry more keys (CSV: an `extra` JSON column)

    def size(self, scope: Scope) -> int:
        return self.count(scope) if self.count else sum(1 for _ in self.rows(scope))


CATEGORIES: dict[str, Category] = {}


def register(name: str, *, columns: tuple[str, ...], subjects: tuple[str, ...] = BOTH,
             count: Callable[[Scope], int] | None = None,
             open_ended: bool = False) -> Callable[[Rows], Rows]:
    """Add a category to every export of these subjects, in registration order. Describe its
    rows in `export.schema.json` too: a test holds the two together."""
    def decorate(rows: Rows) -> Rows:
        if name in CATEGORIES:
            raise ValueError(f"export category {name!r} is registered twice")
        CATEGORIES[name] = Category(name, rows, columns, subjects, count, open_ended)
        return rows
    return decorate


def categories_for(subject: str) -> list[Category]:
    return [c for c in CATEGORIES.values() if subject in c.subjects]


def batches(session: Session, query: Select) -> Iterator[list]:
    """The query's rows, `BATCH` at a time, read from a cursor (server-side on PostgreSQL)
    so that no table is ever held in memory whole."""
    result = session.execute(query.execution_options(yield_per=BATCH))
    for partition in result.partitions():
        yield list(partition)
