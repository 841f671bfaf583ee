"""Mailgun's Routes API as plain functions, and the evaluation of an account's routes for a
message it receives. A route belongs to the account (not a domain); what the customer wrote
is sealed under the route's own content key, so deleting the route (or the account) deletes
the key and nothing of it stays readable."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailhaven.clock import format_rfc2822
from mailhaven.errors import BadRequest, NotFound
from mailhaven.routes.expressions import (
    NO_CAPTURES,
    Program,
    RouteAction,
    RouteError,
    Unmatchable,
    match,
    matches_recipient,
    program,
)
from mailhaven.routes.models import Route
from mailhaven.storage.base import new_id
from mailhaven.vault import Vault, VaultKey

log = logging.getLogger(__name__)

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ACTIONS = 64  # action fields of one route
MAX_DESCRIPTION = 4096  # characters (Mailgun states none)
PRIORITY_RANGE = (-(2 ** 31), 2 ** 31 - 1)  # what the column holds

CREATED = "Route has been created"
UPDATED = "Route has been updated"
DELETED = "Route has been deleted"
NOT_FOUND = "Route not found"
EXPRESSION_MISSING = "Missing mandatory parameter: expression"
LIMIT_TOO_LARGE = f"The 'limit' parameter can't be larger than {MAX_LIMIT}"
LIMIT_INVALID = "The 'limit' parameter must be a positive integer"
SKIP_INVALID = "The 'skip' parameter must be a non-negative integer"
PRIORITY_INVALID = "Invalid parameter: priority must be an integer"
DESCRIPTION_TOO_LONG = f"Invalid parameter: description is longer than {MAX_DESCRIPTION} characters"
TOO_MANY_ACTIONS = f"Invalid parameter: a route has at most {MAX_ACTIONS} actions"
NOT_TEXT = "Invalid parameter: {} is not valid text"
ADDRESS_MISSING = "Missing mandatory parameter: address"
INVALID = "Invalid parameter: {}"
_ID = re.compile(r"[0-9a-f]{24}")
EVALUATION_SECONDS = 1.0  # all of an account's routes for one message and recipient


@dataclass(frozen=True)
class Details:
    """What the customer wrote (sealed)."""

    expression: str
    actions: list[str]
    description: str = ""


# -- reading forms -------------------------------------------------------------------------

def _text(value: str, name: str) -> str:
    """`value` if it can be written as UTF-8 (a lone surrogate from JSON can't)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRequest(NOT_TEXT.format(name)) from None
    return value


def _priority(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise BadRequest(PRIORITY_INVALID) from None
    if not PRIORITY_RANGE[0] <= number <= PRIORITY_RANGE[1]:
        raise BadRequest(PRIORITY_INVALID)
    return number


def _checked(details: Details) -> Details:
    """The details, their expression and actions parsed: a 400 says what is wrong, where."""
    if not details.expression.strip():
        raise BadRequest(EXPRESSION_MISSING)
    if len(details.actions) > MAX_ACTIONS:
        raise BadRequest(TOO_MANY_ACTIONS)
    if len(details.description) > MAX_DESCRIPTION:
        raise BadRequest(DESCRIPTION_TOO_LONG)
    _text(details.description, "description")
    _text(details.expression, "expression")
    for action in details.actions:
        _text(action, "action")
    try:
        program(details.expression, tuple(details.actions))
    except RouteError as exc:
        raise BadRequest(INVALID.format(exc)) from exc
    return details


def _form(fields: list[tuple[str, str]]) -> tuple[dict[str, str], list[str] | None]:
    """The first value of each field, and every `action` in order (None: none given)."""
    first: dict[str, str] = {}
    actions = [value for key, value in fields if key == "action"]
    for key, value in fields:
        first.setdefault(key, value)
    return first, (actions if "action" in first else None)


# -- sealing -------------------------------------------------------------------------------

def _context(route_id: str) -> str:
    return f"route:{route_id}"


def _seal(vault: Vault, key: VaultKey, route_id: str, details: Details) -> bytes:
    return vault.seal(key, json.dumps(details.__dict__).encode(), _context(route_id))


def _open(vault: Vault, keys: dict[str, VaultKey], row: Route) -> Details:
    key = keys.get(row.content_key_id)
    assert key is not None  # deleting the key deletes the route
    return Details(**json.loads(vault.open(key, row.details_sealed,
                                           _context(row.public_id))))


def _opened(session: Session, vault: Vault, rows: list[Route]) -> list[tuple[Route, Details]]:
    keys = vault.keys(session, (row.content_key_id for row in rows))
    return [(row, _open(vault, keys, row)) for row in rows]


# -- shapes --------------------------------------------------------------------------------

def route_json(row: Route, details: Details) -> dict[str, Any]:
    return {"id": row.public_id, "priority": row.priority,
            "description": details.description, "expression": details.expression,
            "actions": list(details.actions), "created_at": format_rfc2822(row.created_at)}


# -- the API -------------------------------------------------------------------------------

def _ordered() -> tuple[Any, ...]:
    """Mailgun's evaluation order: ascending priority, then the oldest first."""
    return Route.priority, Route.id


def _find(session: Session, account_id: str, route_id: str) -> Route:
    if not _ID.fullmatch(route_id):
        raise NotFound(NOT_FOUND)  # no id of ours: asked of no database
    row = session.scalar(select(Route).where(Route.public_id == route_id,
                                             Route.account_id == account_id))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _count(value: str | None, default: int, invalid: str, *, least: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(invalid) from None
    if number < least:
        raise BadRequest(invalid)
    return number


def listing(session: Session, vault: Vault, account_id: str, *, skip: str | None,
            limit: str | None) -> dict[str, Any]:
    """`GET /v3/routes`: a page of the account's routes, in evaluation order."""
    first = _count(skip, 0, SKIP_INVALID, least=0)
    size = _count(limit, DEFAULT_LIMIT, LIMIT_INVALID, least=1)
    if size > MAX_LIMIT:
        raise BadRequest(LIMIT_TOO_LARGE)
    total = session.scalar(select(func.count()).where(Route.account_id == account_id)) or 0
    rows = list(session.scalars(select(Route).where(Route.account_id == account_id)
                                .order_by(*_ordered()).offset(first).limit(size)))
    return {"total_count": total,
            "items": [route_json(row, details) for row, details in
                      _opened(session, vault, rows)]}


def create(session: Session, vault: Vault, account_id: str, fields: list[tuple[str, str]],
           now: float) -> dict[str, Any]:
    """`POST /v3/routes`."""
    first, actions = _form(fields)
    details = _checked(Details(first.get("expression", ""), actions or [],
                               first.get("description", "")))
    priority = _priority(first["priority"]) if first.get("priority", "").strip() else 0
    key = vault.new_content_key(session, account_id)
    route_id = new_id()
    row = Route(public_id=route_id, account_id=account_id, priority=priority,
                content_key_id=key.id, created_at=now,
                details_sealed=_seal(vault, key, route_id, details))
    session.add(row)
    session.flush()
    return {"message": CREATED, "route": route_json(row, details)}


def get(session: Session, vault: Vault, account_id: str, route_id: str) -> dict[str, Any]:
    """`GET /v3/routes/{id}`."""
    [(row, details)] = _opened(session, vault, [_find(session, account_id, route_id)])
    return {"route": route_json(row, details)}


def update(session: Session, vault: Vault, account_id: str, route_id: str,
           fields: list[tuple[str, str]]) -> dict[str, Any]:
    """`PUT /v3/routes/{id}`: what is given changes (`action`s replace the actions), the
    rest stays. Mailgun answers with the route's fields beside the message (mailgun-go
    reads them there), its OpenAPI with them under `route`: both are given."""
    row = _find(session, account_id, route_id)
    [(row, details)] = _opened(session, vault, [row])
    first, actions = _form(fields)
    changed = _checked(Details(
        first.get("expression", details.expression),
        actions if actions is not None else details.actions,
        first.get("description", details.description)))
    if first.get("priority", "").strip():
        row.priority = _priority(first["priority"])
    key = vault.keys(session, [row.content_key_id])[row.content_key_id]
    row.details_sealed = _seal(vault, key, row.public_id, changed)
    shown = route_json(row, changed)
    return {**shown, "message": UPDATED, "route": shown}


def remove(session: Session, vault: Vault, account_id: str, route_id: str) -> dict[str, Any]:
    """`DELETE /v3/routes/{id}`: the route goes with its key."""
    row = _find(session, account_id, route_id)
    route_id, key_id = row.public_id, row.content_key_id
    _delete_keys(session, [key_id])
    vault.forget(key_id)
    return {"message": DELETED, "id": route_id}


def match_address(session: Session, vault: Vault, account_id: str,
                  address: str | None) -> dict[str, Any]:
    """`GET /v3/routes/match?address=`: the first route, in evaluation order, whose
    match_recipient filters match the address (its header filters can't be judged
    without a message; catch_all() routes are not a match for an address)."""
    if not address or not address.strip():
        raise BadRequest(ADDRESS_MISSING)
    for row, details, compiled in _programs(session, vault, account_id):
        try:
            if matches_recipient(compiled.expression, address.strip()):
                return {"route": route_json(row, details)}
        except Unmatchable as exc:
            log.warning("route %s: a filter counts as no match: %s", row.public_id, exc)
    raise NotFound(NOT_FOUND)


# -- evaluation ----------------------------------------------------------------------------

def _programs(session: Session, vault: Vault,
              account_id: str) -> Iterator[tuple[Route, Details, Program]]:
    """The account's routes in evaluation order, each read; one that no longer reads (it
    can't: every stored route was checked) is logged by id and skipped."""
    rows = list(session.scalars(select(Route).where(Route.account_id == account_id)
                                .order_by(*_ordered())))
    for row, details in _opened(session, vault, rows):
        try:
            compiled = program(details.expression, tuple(details.actions))
        except RouteError:
            log.warning("route %s can't be read and is skipped", row.public_id)
            continue
        yield row, details, compiled


def matching_actions(session: Session, vault: Vault, account_id: str, recipient: str,
                     headers: list[tuple[str, str]]) -> list[RouteAction]:
    """The actions the account's routes ask for a message to `recipient` with `headers`,
    as Mailgun evaluates them: ascending priority (ties: the oldest first); every matching
    route adds its actions in order, and one with stop() is the last to (its own actions
    all count); catch_all() matches only when no route before it did. A filter whose
    pattern can't be run to the end (too slow, or text too long) counts as no match, and
    so do all routes once the evaluation has taken EVALUATION_SECONDS (a message can't
    hold the processor by sending many slow routes after each other their worst text)."""
    found: list[RouteAction] = []
    matched = False
    deadline = time.monotonic() + EVALUATION_SECONDS
    programs = _programs(session, vault, account_id)
    for row, _details, compiled in programs:
        if time.monotonic() >= deadline:
            skipped = [row.public_id, *(later.public_id for later, _, _ in programs)]
            log.warning("routes %s%s: not evaluated, count as no match: the evaluation "
                        "ran out of time", ", ".join(skipped[:20]),
                        f" and {len(skipped) - 20} more" if len(skipped) > 20 else "")
            break
        expression = compiled.expression
        if expression.catch_all:
            if matched:
                continue
            captures = NO_CAPTURES
        else:
            try:
                got = match(expression, recipient, headers, deadline)
            except Unmatchable as exc:
                log.warning("route %s: a filter counts as no match: %s", row.public_id, exc)
                continue
            if got is None:
                continue
            captures = got
        matched = True
        found.extend(compiled.resolve(row.public_id, captures))
        if compiled.stops:
            break
    return found


# -- privacy -------------------------------------------------------------------------------

def exported(session: Session, vault: Vault, account_id: str) -> Iterator[dict[str, Any]]:
    """Every route of the account, opened (the account holder's access export)."""
    rows = list(session.scalars(select(Route).where(Route.account_id == account_id)
                                .order_by(*_ordered())))
    for row, details in _opened(session, vault, rows):
        yield {"id": row.public_id, "priority": row.priority, "description": details.description,
               "expression": details.expression, "actions": list(details.actions),
               "created_at": row.created_at}


def _delete_keys(session: Session, key_ids: list[str]) -> None:
    """Delete these keys, and the routes they seal (ON DELETE CASCADE)."""
    if not key_ids:
        return
    session.execute(delete(VaultKey).where(VaultKey.id.in_(key_ids))
                    .execution_options(synchronize_session=False))
    session.expire_all()  # the routes went by cascade: no stale object may be read
