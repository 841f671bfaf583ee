"""Leased queues: rows of work that a claim holds for a while, then settles.

A claim moves a due row's `next_attempt_at` to the end of its lease and stamps
`lease_owner`; a claimer that dies simply lets the lease run out, and the row is due again
for anyone to claim. Settling is fenced by the lease: it applies only while the row still
carries this claim's owner and expiry, so a claimer that lost its lease (to another, or to a
later claim of its own) can't overwrite what the newer claim records. Cancelling leaves
the rows a claim holds to it, for the same reason, but marks them: their settle writes the
cancelled status where it would have put them back to wait. Claims are shared fairly
between the accounts with rows due (`fair_shares`), so one account's backlog delays
another's work by a claim at most.
The delivery queue and the webhook queue are such queues; how a claim differs between the
databases (SKIP LOCKED, BEGIN IMMEDIATE) is said only here.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Row,
    ScalarSelect,
    Select,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal,
    not_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from mailhaven.storage.db import is_postgresql
from mailhaven.storage.fair_shares import fair_shares


@dataclass(frozen=True)
class Lease:
    """One claim's hold on the rows it took: who took them and until when. `until` is the
    rows' `next_attempt_at` while they are held; any later claim of them has a later one."""

    owner: str
    until: float


class LeasedQueue:
    """The rows of `model` whose status is `waiting`, due from their `next_attempt_at`. Its
    table has the columns id, account_id, status, next_attempt_at, lease_owner and
    updated_at, and an index on (account_id, next_attempt_at) of its waiting rows. A queue
    that can be cancelled (`cancelled`, the status of a cancelled row) has a boolean
    `cancel_requested` column too."""

    def __init__(self, model: type[Any], *, waiting: str, cancelled: str | None = None) -> None:
        self.model = model
        self.waiting = waiting
        self.cancelled = cancelled
        # Written out, not bound: only a query that says `status = 'queued'` itself may use
        # a partial index of the waiting rows (on PostgreSQL and SQLite alike).
        self._waiting: ColumnElement[bool] = model.status == literal(waiting, literal_execute=True)
        self._accounts = self._waiting_accounts()
        self._shares = functools.lru_cache(maxsize=128)(self._build_shares)

    # -- claim ------------------------------------------------------------------------------
    def claim(self, session: Session, *, owner: str, now: float, limit: int,
              lease_seconds: float, held: Mapping[str, int] | None = None,
              capacity: int | None = None, **values: Any) -> tuple[Lease, list[int]]:
        """Lease up to `limit` due rows to `owner`, setting `values` on them too (in a write
        transaction: `Database.transaction`). `held`: the rows of each account the claimer
        holds already, out of `capacity` (its concurrency): the fair shares of this claim are
        counted over both. The lease and the ids of the rows taken."""
        lease = Lease(owner, now + lease_seconds)
        ids = self._due_ids(session, now, limit, held or {}, capacity or limit)
        if ids:
            session.execute(self._take(ids, lease, now, values))
        return lease, ids

    def claim_rows(self, session: Session, *, owner: str, now: float, limit: int,
                   lease_seconds: float, held: Mapping[str, int] | None = None,
                   capacity: int | None = None, **values: Any) -> tuple[Lease, list[Row[Any]]]:
        """`claim`, giving the rows taken as the claim left them (every column of the
        table, from the UPDATE's RETURNING: no second read of them)."""
        lease = Lease(owner, now + lease_seconds)
        ids = self._due_ids(session, now, limit, held or {}, capacity or limit)
        if not ids:
            return lease, []
        table = self.model.__table__
        return lease, list(session.execute(self._take(ids, lease, now, values)
                                           .returning(*table.c)))

    def _take(self, ids: list[int], lease: Lease, now: float, values: dict[str, Any]) -> Update:
        return (update(self.model).where(self.model.id.in_(ids))
                .values(lease_owner=lease.owner, next_attempt_at=lease.until, updated_at=now,
                        **values)
                .execution_options(synchronize_session=False))

    def _due_ids(self, session: Session, now: float, limit: int, held: Mapping[str, int],
                 capacity: int) -> list[int]:
        """Up to `limit` due rows, shared fairly between the accounts that have some: each
        account first gets up to its share of the claimer (`capacity` over the accounts due,
        less what it holds of it already), the account waiting longest first; slots left
        over go to the oldest due rows of anyone."""
        accounts = {account_id: due for account_id, due in session.execute(self._accounts)
                    if due <= now}
        postgresql = is_postgresql(session)
        if len(accounts) <= 1:  # nobody to share with: the oldest due, as fast as ever
            return list(session.scalars(self._oldest_due(now, limit, postgresql)))
        rooms = fair_shares(accounts, limit=limit, capacity=capacity, held=held)
        ids: list[int] = []
        if rooms:  # one statement for all the accounts' shares
            params: dict[str, object] = {"now": now}
            for i, (account_id, room) in enumerate(rooms.items()):
                params |= {f"account_{i}": account_id, f"room_{i}": room}
            ids = list(session.scalars(self._shares(len(rooms), postgresql), params))
        if len(ids) < limit:
            ids += session.scalars(self._oldest_due(now, limit - len(ids), postgresql,
                                                    besides=ids))
        return ids

    def _oldest_due(self, now: float, limit: int, postgresql: bool,
                    besides: Collection[int] = ()) -> Select[int]:
        rows = self.model
        query = (select(rows.id).where(self._waiting, rows.next_attempt_at <= now)
                 .order_by(rows.next_attempt_at).limit(limit))
        if besides:
            query = query.where(rows.id.not_in(besides))
        return _locked(query, postgresql)

    def _build_shares(self, accounts: int, postgresql: bool) -> CompoundSelect[int]:
        """The oldest due rows of `accounts` accounts, up to a number for each: built once
        for each number of accounts (building it is most of its cost)."""
        rows = self.model
        parts = []
        for i in range(accounts):
            query = (select(rows.id)
                     .where(self._waiting, rows.account_id == bindparam(f"account_{i}"),
                            rows.next_attempt_at <= bindparam("now"))
                     .order_by(rows.next_attempt_at).limit(bindparam(f"room_{i}")))
            parts.append(select(_locked(query, postgresql).subquery().c.id))
        return union_all(*parts)

    def _waiting_accounts(self) -> Select[str, float]:
        """The accounts with waiting rows, each with its oldest due time: a recursive query
        that skips through the (account, due) index one account at a time, a few index
        lookups per account however many rows each has. Built once: building it costs
        more than running it."""
        rows = self.model

        def first_account(*after: ColumnElement[bool]) -> ScalarSelect[str]:
            # Ordered as the index is (account, due), so that no other index can serve it: a
            # plan walking an index of account_id alone would read every settled row too.
            return (select(rows.account_id).where(self._waiting, *after)
                    .order_by(rows.account_id, rows.next_attempt_at).limit(1)
                    .scalar_subquery())

        walk = select(first_account().label("account_id")).cte("waiting_accounts",
                                                              recursive=True)
        step = walk.alias("previous")
        walk = walk.union_all(select(first_account(rows.account_id > step.c.account_id))
                              .where(step.c.account_id.is_not(None)))
        oldest = (select(func.min(rows.next_attempt_at))
                  .where(self._waiting, rows.account_id == walk.c.account_id)
                  .scalar_subquery())
        return select(walk.c.account_id, oldest).where(walk.c.account_id.is_not(None))

    # -- settle -----------------------------------------------------------------------------
    def fenced(self, ids: Collection[int], lease: Lease, now: float, **values: Any) -> Update:
        """Set `values` on the rows of `ids` that `lease` still holds, releasing it. A row
        that would wait again (its status left as it is, or set to waiting) but whose
        cancellation was asked for while it was held is cancelled instead."""
        rows = self.model
        if self.cancelled is not None and values.get("status", self.waiting) == self.waiting:
            values["status"] = case((rows.cancel_requested, self.cancelled),
                                    else_=self.waiting)
        return (update(rows)
                .where(rows.id.in_(ids), rows.lease_owner == lease.owner,
                       rows.next_attempt_at == lease.until, rows.status == self.waiting)
                .values(lease_owner=None, updated_at=now, **values)
                .execution_options(synchronize_session=False))

    def settle(self, session: Session, ids: Collection[int], lease: Lease, now: float,
               **values: Any) -> set[int]:
        """`fenced`, run: the ids of the rows it settled (the others' lease was lost)."""
        return set(session.scalars(self.fenced(ids, lease, now, **values)
                                   .returning(self.model.id)))

    # -- cancel -----------------------------------------------------------------------------
    @property
    def waiting_rows(self) -> ColumnElement[bool]:
        """The rows still to be done, as a condition the partial index serves."""
        return self._waiting

    def held(self, now: float) -> ColumnElement[bool]:
        """Rows a claim holds at `now`: leased, and the lease not run out."""
        rows = self.model
        return and_(rows.lease_owner.is_not(None), rows.next_attempt_at > now)

    def cancel(self, session: Session, where: ColumnElement[bool], now: float, *,
               limit: int) -> list[int]:
        """Settle up to `limit` waiting rows matching `where` as cancelled, but none a claim
        holds now: its holder is at work on it and records what came of it (a row changed
        under it would fail its fenced settle, and the outcome would go unrecorded). Those
        are marked instead (`cancel_requested`, the lease left as it is so that the settle
        still matches): the settle cancels them unless the attempt ended them, and a claim
        that takes one again (its holder died) should settle it as cancelled. Rows another
        transaction is claiming this moment are skipped: they are its claim's once it
        commits. The ids settled; call again until none is left."""
        assert self.cancelled is not None, "this queue can't be cancelled"
        rows = self.model
        postgresql = is_postgresql(session)
        # Marked first, skipping a row whose settle is being written (no deadlock with it):
        # once that commits, the row is free for the next statement or ended.
        held = and_(self._waiting, where, self.held(now), not_(rows.cancel_requested))
        marked = list(session.scalars(_locked(select(rows.id).where(held), postgresql)))
        if marked:
            session.execute(update(rows).where(rows.id.in_(marked))
                            .values(cancel_requested=True)
                            .execution_options(synchronize_session=False))
        free = and_(self._waiting, where, not_(self.held(now)))
        ids = list(session.scalars(_locked(select(rows.id).where(free).order_by(rows.id)
                                           .limit(limit), postgresql)))
        if not ids:
            return []
        return list(session.scalars(
            update(rows).where(rows.id.in_(ids), free)
            .values(status=self.cancelled, lease_owner=None, updated_at=now)
            .returning(rows.id).execution_options(synchronize_session=False)))


def _locked(query: Select[int], postgresql: bool) -> Select[int]:
    """`query` taking the rows it finds, skipping those another claim is taking now. On
    SQLite the write transaction began IMMEDIATE: it holds the only write lock already."""
    return query.with_for_update(skip_locked=True) if postgresql else query
