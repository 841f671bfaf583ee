"""`/v3/routes…`: Mailgun's Routes API (an account's routes, not a domain's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.http import form_body, in_thread, json_responses, read_form
from mailhaven.routes import openapi as answered
from mailhaven.routes import service
from mailhaven.services import Services

router = APIRouter(tags=["routes"])
T = TypeVar("T")

FORM_BYTES = 512 * 1024  # 64 actions of 4k characters, percent-encoded, and the rest
BASE = "/v3/routes"
ONE = f"{BASE}/{{route_id}}"

EXAMPLE = {"id": "4f3bad2335335426750048c6", "priority": 0, "description": "Sample route",
           "expression": 'match_recipient(".*@samples.mailgun.org")',
           "actions": ['forward("http://myhost.com/messages/")', "stop()"],
           "created_at": "Wed, 15 Feb 2012 13:03:31 GMT"}
FIELDS = {
    "priority": "An integer; smaller numbers are evaluated first (default 0)",
    "description": "A description (kept sealed)",
    "expression": 'The filter: match_recipient("re"), match_header("name", "re") joined by '
                  "`and`, or catch_all()",
    "action": 'An action, repeatable: forward("https://… or address"), '
              'store(notify="https://…"), stop()',
}
BAD = (400, ("Invalid parameters",
             {"message": "Invalid parameter: expression: unknown filter match_sender() at "
                         "character 1 (use match_recipient, match_header or catch_all)"}))
MISSING = (404, ("No such route", {"message": service.NOT_FOUND}))


async def _run(services: Services, work: Callable[[Session], T], *, write: bool = False) -> T:
    def run() -> T:
        with services.db.transaction() if write else services.db.sessions() as session:
            return work(session)
    return await in_thread(run)


async def _fields(request: Request) -> list[tuple[str, str]]:
    fields, _ = await read_form(request, limit=FORM_BYTES)
    return fields


@router.get(BASE, openapi_extra=answered.LISTED, responses=json_responses({
    200: ("Success", {"total_count": 1, "items": [EXAMPLE]}),
    400: ("Invalid paging", {"message": service.LIMIT_TOO_LARGE})}))
async def list_routes(services: ServicesDep, account_id: AccountDep, skip: str | None = None,
                      limit: str | None = None) -> dict[str, Any]:
    """The account's routes in the order they are evaluated, `limit` (default 100, at most
    1000) after the first `skip`."""
    return await _run(services, lambda session: service.listing(
        session, services.vault, account_id, skip=skip, limit=limit))


@router.post(BASE, openapi_extra=form_body(FIELDS, required=("expression",)) | answered.CREATED,
             responses=json_responses({
                 200: ("Success", {"message": service.CREATED, "route": EXAMPLE}), 400: BAD[1]}))
async def create_route(request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict[str, Any]:
    """Add a route; its expression and actions are checked (a 400 says what is wrong and
    where)."""
    fields = await _fields(request)
    return await _run(services, lambda session: service.create(
        session, services.vault, account_id, fields, services.clock.now()), write=True)


# Before `/v3/routes/{route_id}`, which would take `match` for an id.
@router.get(f"{BASE}/match", openapi_extra=answered.ONE, responses=json_responses({
    200: ("The first route whose match_recipient matches", {"route": EXAMPLE}),
    400: ("No address", {"message": service.ADDRESS_MISSING}), 404: MISSING[1]}))
async def match_route(services: ServicesDep, account_id: AccountDep,
                      address: str | None = None) -> dict[str, Any]:
    """The first route, in evaluation order, whose match_recipient filters match
    `address`."""
    return await _run(services, lambda session: service.match_address(
        session, services.vault, account_id, address))


@router.get(ONE, openapi_extra=answered.ONE, responses=json_responses({
    200: ("Success", {"route": EXAMPLE}), 404: MISSING[1]}))
async def get_route(route_id: str, services: ServicesDep,
                    account_id: AccountDep) -> dict[str, Any]:
    """One route."""
    return await _run(services, lambda session: service.get(
        session, services.vault, account_id, route_id))


@router.put(ONE, openapi_extra=form_body(FIELDS) | answered.UPDATED, responses=json_responses({
    200: ("Success", {**EXAMPLE, "message": service.UPDATED, "route": EXAMPLE}),
    400: BAD[1], 404: MISSING[1]}))
async def update_route(route_id: str, request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict[str, Any]:
    """Change what is given; `action` fields replace all the actions."""
    fields = await _fields(request)
    return await _run(services, lambda session: service.update(
        session, services.vault, account_id, route_id, fields), write=True)


@router.delete(ONE, openapi_extra=answered.DELETED, responses=json_responses({
    200: ("Success", {"message": service.DELETED, "id": EXAMPLE["id"]}), 404: MISSING[1]}))
async def delete_route(route_id: str, services: ServicesDep,
                       account_id: AccountDep) -> dict[str, Any]:
    """Delete a route (its sealed expression and actions go with its key)."""
    return await _run(services, lambda session: service.remove(
        session, services.vault, account_id, route_id), write=True)
