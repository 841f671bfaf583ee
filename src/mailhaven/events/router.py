"""`GET /v3/{domain}/events` and the page URLs it hands out."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import owned_domain_id
from mailhaven.events.openapi import PAGE
from mailhaven.events.query import DEFAULT_LIMIT, MAX_LIMIT, EventQuery, fetch_json, parse_query
from mailhaven.http import in_thread
from mailhaven.openapi import Field, query

router = APIRouter(tags=["events"])
TIME = "an RFC 2822 date or epoch seconds"
EVENTS_QUERY = query(  # Mailgun's names and meanings; the other filters are refused (400)
    Field("begin", f"The start of the range, {TIME}", example="Fri, 04 Dec 2026 00:00:00 GMT"),
    Field("end", f"The end of the range, {TIME}; before `begin` reads backwards",
          example="1796515200"),
    Field("ascending", "Oldest first (default: yes with only `begin`, as given by `begin` "
          "and `end`, else no)", "boolean"),
    Field("limit", f"Events per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})", "integer",
          example="100"),
    Field("event", "Only events of this type; `a OR b`, `NOT a`", example="delivered OR failed"),
    Field("recipient", "Only events for this recipient's address", example="bob@example.com"),
    Field("tags", "Only events of messages with this tag; `a OR b`, `NOT a`",
          example="newsletter"),
    Field("message-id", "Only events of the message with this Message-ID",
          example="20261206092117.e0c672c36ac384c9@mg.example.com"),
    Field("severity", "Only failures of this severity: temporary or permanent",
          example="permanent"))


async def _page(domain_name: str, query: EventQuery, request: Request, services: ServicesDep,
                account_id: str) -> Response:
    base_url = str(request.base_url).rstrip("/")
    base = f"{base_url}/v3/{domain_name}/events"

    def run() -> Response:
        with services.db.sessions() as session:
            domain_id = owned_domain_id(session, account_id, domain_name)
            page = fetch_json(session, services.vault, account_id, domain_id, query,
                              f"{base_url}/v3/domains/{domain_name}/messages/")
        paging = {name: f"{base}/{getattr(page, name).token(services.vault)}"
                  for name in ("first", "last", "next", "previous")}
        # The body as JSONResponse would render {"items": [...], "paging": {...}}, with each
        # item the event's JSON as it was sealed, spliced in rather than decoded and encoded
        # again (300 documents: most of a page's time). Rendered here, off the event loop.
        return Response(b"".join((
            b'{"items":[', b",".join(page.items), b'],"paging":',
            json.dumps(paging, ensure_ascii=False, separators=(",", ":")).encode(), b"}")),
            media_type="application/json")
    return await in_thread(run)


@router.get("/v3/{domain_name}/events", openapi_extra=EVENTS_QUERY | PAGE)
async def list_events(domain_name: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> Response:
    query = parse_query(dict(request.query_params), services.vault, account_id)
    return await _page(domain_name, query, request, services, account_id)


@router.get("/v3/{domain_name}/events/{token}", openapi_extra=PAGE)
async def events_page(domain_name: str, token: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> Response:
    query = EventQuery.from_token(token, services.vault, account_id)
    return await _page(domain_name, query, request, services, account_id)
