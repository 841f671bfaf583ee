"""`/v3/lists…`: Mailgun's Lists API (lists, their members, bulk uploads), and the page a
member's `%mailing_list_unsubscribe_url%` link opens."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.errors import BadRequest
from mailhaven.forms import field_dict, flag
from mailhaven.http import in_thread, query_url, read_form
from mailhaven.lists import openapi as answered
from mailhaven.lists import service
from mailhaven.lists.models import MailingList
from mailhaven.openapi import Field, form, query
from mailhaven.services import Services
from mailhaven.web.core import SECURITY_HEADERS

router = APIRouter(tags=["mailing lists"])
T = TypeVar("T")

FORM_BYTES = 8 * 1024 * 1024  # a 5 MB CSV, or 1,000 members as JSON, with room to spare
LISTS = "/v3/lists"
ONE = "/v3/lists/{list_address}"
MEMBERS = f"{ONE}/members"
MEMBER = f"{MEMBERS}/{{member_address}}"
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


async def _read(services: Services, work: Callable[[Session], T], *,
                write: bool = False) -> T:
    def run() -> T:
        with services.db.transaction() if write else services.db.sessions() as session:
            return work(session)
    return await in_thread(run)


LIST_FIELDS = (  # Mailgun's names and meanings
    Field("name", "The list's name", example="Developers"),
    Field("description", "A description"),
    Field("access_level", "Who may send to the list", enum=service.ACCESS_LEVELS),
    Field("reply_preference", "Where replies go", enum=service.REPLY_PREFERENCES))
MEMBER_FIELDS = (
    Field("name", "The member's name"),
    Field("vars", "A JSON object of the member's variables", example='{"age": 26}'),
    Field("subscribed", "Whether the member receives the list's mail (default: yes)",
          "boolean"))
UPSERT = Field("upsert", "Update members already there (else they stay as they are)",
               "boolean")


async def _fields(request: Request) -> dict[str, str]:
    fields, files = await read_form(request, limit=FORM_BYTES)
    given = field_dict(fields)
    for name, attachment in files:  # a CSV sent as `file`
        given.setdefault(name, attachment.data.decode("utf-8-sig", "replace"))
    return given


def _on_list(account_id: str, address: str,
             work: Callable[[Session, MailingList], T],
             not_found: str = service.LIST_NOT_FOUND) -> Callable[[Session], T]:
    return lambda session: work(session, service.get_list(session, account_id, address,
                                                          not_found))


def _paging(request: Request, services: Services, path: str, page: service.Page, limit: int,
            **extra: object) -> dict[str, str]:
    """Links as the other links we hand out: at the operator's public URL when set (behind
    a proxy the request's own base is an inside address), else where the request came."""
    base = services.settings.public_url or str(request.base_url)
    url = f"{base.rstrip('/')}{path}"
    return {"first": query_url(url, page="first", limit=limit, **extra),
            "last": query_url(url, page="last", limit=limit, **extra),
            "next": query_url(url, page="next", address=page.last, limit=limit,
                              position=page.last_position, **extra),
            "previous": query_url(url, page="prev", address=page.first, limit=limit,
                                  position=page.first_position, **extra)}


# -- lists ---------------------------------------------------------------------------------

@router.get(LISTS, openapi_extra=answered.LISTS)
async def list_lists(services: ServicesDep, account_id: AccountDep,
                     limit: int = Query(service.DEFAULT_LIMIT, ge=1, le=service.MAX_LIMIT),
                     skip: int = Query(0, ge=0), address: str | None = None) -> dict[str, Any]:
    """The account's mailing lists, by address: `total_count`, and `limit` after `skip`."""
    return await _read(services, lambda session: service.listing(
        session, services.vault, account_id, limit=limit, skip=skip, address=address))


@router.get(f"{LISTS}/pages", openapi_extra=answered.LIST_PAGES)
async def list_pages(request: Request, services: ServicesDep, account_id: AccountDep,
                     limit: int = Query(service.DEFAULT_LIMIT, ge=1, le=service.MAX_LIMIT),
                     page: str | None = None, address: str | None = None) -> dict[str, Any]:
    """The account's mailing lists a page at a time (`page` first, last, next or prev; the
    pivot `address` the links carry)."""
    found = await _read(services, lambda session: service.pages(
        session, services.vault, account_id, limit=limit, page=page, pivot=address))
    return {"items": found.items,
            "paging": _paging(request, services, f"{LISTS}/pages", found, limit)}


@router.post(LISTS, openapi_extra=form(Field(
    "address", "The list's address, on one of the account's domains", required=True,
    example="developers@mg.example.com"), *LIST_FIELDS)
    | answered.list_changed("Mailing list has been created"))
async def create_list(request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict[str, Any]:
    """A mailing list at an address on one of the account's domains."""
    fields = await _fields(request)
    return await _read(services, lambda session: service.create(
        session, services.vault, account_id, fields, services.clock.now()), write=True)


@router.get(ONE, openapi_extra=answered.ONE_LIST)
async def get_list(list_address: str, services: ServicesDep,
                   account_id: AccountDep) -> dict[str, Any]:
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        {"list": service.one_json(s, services.vault, row)})))


@router.put(ONE, openapi_extra=form(Field("address", "The list's new address"), *LIST_FIELDS)
            | answered.list_changed(service.UPDATED))
async def update_list(list_address: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict[str, Any]:
    fields = await _fields(request)
    return await _read(services, lambda session: service.update_list(
        session, services.vault, account_id, list_address, fields), write=True)


@router.delete(ONE, openapi_extra=answered.LIST_DELETED)
async def delete_list(list_address: str, services: ServicesDep,
                      account_id: AccountDep) -> dict[str, Any]:
    """The list and its members."""
    return await _read(services, lambda session: service.delete_list(
        session, services.vault, account_id, list_address), write=True)


# -- members -------------------------------------------------------------------------------

@router.get(MEMBERS, openapi_extra=answered.MEMBERS)
async def list_members(list_address: str, services: ServicesDep, account_id: AccountDep,
                       limit: int = Query(service.MAX_MEMBERS_LIMIT, ge=1),
                       skip: int = Query(0, ge=0), address: str | None = None,
                       subscribed: str | None = None) -> dict[str, Any]:
    """`limit` above the most (100) is taken as the most: SDKs pass on their caller's."""
    limit = min(limit, service.MAX_MEMBERS_LIMIT)
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.members_listing(s, services.vault, row, limit=limit, skip=skip,
                                address=address, subscribed=subscribed))))


@router.get(f"{MEMBERS}/pages", openapi_extra=answered.MEMBER_PAGES)
async def member_pages(list_address: str, request: Request, services: ServicesDep,
                       account_id: AccountDep,
                       limit: int = Query(service.DEFAULT_LIMIT, ge=1, le=service.MAX_LIMIT),
                       page: str | None = None, address: str | None = None,
                       subscribed: str | None = None,
                       position: int | None = Query(None, ge=1, le=2 ** 63 - 1)
                       ) -> dict[str, Any]:
    """Members in the order they were added, a page at a time (`position`: where our
    links' pivot stands in that order, for a pivot deleted meanwhile)."""
    found = await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.members_page(s, services.vault, row, limit=limit, page=page, pivot=address,
                             subscribed=subscribed, position=position))))
    path = f"{LISTS}/{list_address}/members/pages"
    return {"items": found.items,
            "paging": _paging(request, services, path, found, limit,
                              subscribed=subscribed)}


@router.post(MEMBERS, openapi_extra=form(Field(
    "address", "The member's address (\"Name <a@b>\" allowed)", required=True), *MEMBER_FIELDS,
    UPSERT) | answered.member_changed("Mailing list member has been created"))
async def add_member(list_address: str, request: Request, services: ServicesDep,
                     account_id: AccountDep) -> dict[str, Any]:
    fields = await _fields(request)
    now = services.clock.now()
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.add_member(s, services.vault, row, fields, now))), write=True)


BULK_MEMBERS = Field(
    "members", "A JSON array of addresses or member objects (address, name, vars, "
    "subscribed); at most 1000. Also read from the query string",
    example='["bob@example.com", {"address": "ann@example.com", "name": "Ann"}]')


@router.post(f"{ONE}/members.json", openapi_extra=form(
    replace(BULK_MEMBERS, required=True), UPSERT) | query(BULK_MEMBERS, UPSERT)
    | answered.list_changed(service.UPDATED))
async def add_members_json(list_address: str, request: Request, services: ServicesDep,
                           account_id: AccountDep) -> dict[str, Any]:
    """Up to 1,000 members at once: `members`, a JSON array of addresses or member objects;
    `upsert=yes` updates members already there (else they stay as they are)."""
    fields = await _fields(request)
    for name in ("members", "upsert"):  # Mailgun's OpenAPI puts them in the query
        if name not in fields and name in request.query_params:
            fields[name] = request.query_params[name]
    now = services.clock.now()
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.bulk_json(s, services.vault, row, fields, now)),
        service.BULK_LIST_NOT_FOUND), write=True)


@router.post(f"{ONE}/members.csv", openapi_extra=form(
    Field("members", "The CSV file (or text): a header row naming address (and name, vars, "
          "subscribed), or one address a row", "file", required=True),
    Field("subscribed", "Whether the members receive the list's mail (default: yes)",
          "boolean"), UPSERT) | answered.list_changed(service.UPDATED))
async def add_members_csv(list_address: str, request: Request, services: ServicesDep,
                          account_id: AccountDep) -> dict[str, Any]:
    """Up to 1,000 members from a CSV file (`members`, or `file`): a header row naming
    `address` (and `name`, `vars`, `subscribed`), or one address a row."""
    fields, files = await read_form(request, limit=FORM_BYTES)
    given = field_dict(fields)
    upload = next((a.data for k, a in files if k in ("members", "file")), None)
    text = upload if upload is not None else (
        given["members"].encode() if "members" in given else None)
    if text is None:
        raise BadRequest(service.MEMBERS_MISSING)
    members = service.csv_members(text, subscribed=flag(given.get("subscribed"), True))
    upsert, now = flag(given.get("upsert")), services.clock.now()
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.bulk_csv(s, services.vault, row, members, upsert=upsert, now=now)),
        service.BULK_LIST_NOT_FOUND), write=True)


@router.get(MEMBER, openapi_extra=answered.ONE_MEMBER)
async def get_member(list_address: str, member_address: str, services: ServicesDep,
                     account_id: AccountDep) -> dict[str, Any]:
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        {"member": service.get_member(s, services.vault, row, member_address).json()})))


@router.put(MEMBER, openapi_extra=form(Field("address", "The member's new address"),
                                       *MEMBER_FIELDS)
            | answered.member_changed(service.MEMBER_UPDATED))
async def update_member(list_address: str, member_address: str, request: Request,
                        services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    fields = await _fields(request)
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.update_member(s, services.vault, row, member_address, fields))), write=True)


@router.delete(MEMBER, openapi_extra=answered.member_changed(
    "Mailing list member has been deleted"))
async def delete_member(list_address: str, member_address: str, services: ServicesDep,
                        account_id: AccountDep) -> dict[str, Any]:
    return await _read(services, _on_list(account_id, list_address, lambda s, row: (
        service.delete_member(s, services.vault, row, member_address))), write=True)


# -- the member's unsubscribe link (no API key: the signed token is the authority) ----------

def _page(text: str, *, button: bool = False, status_code: int = 200) -> HTMLResponse:
    form = ('<form method="post"><button type="submit">Unsubscribe</button></form>'
            if button else "")
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Unsubscribe</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
            f"</head><body class=\"site\"><main class=\"narrow card\"><h1>Unsubscribe</h1>"
            f"<p>{html.escape(text)}</p>{form}</main></body></html>")
    return HTMLResponse(body, status_code=status_code, headers={**SECURITY_HEADERS, **NO_STORE})


@router.get("/lists/unsubscribe/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, services: ServicesDep) -> HTMLResponse:
    """A confirmation page: link scanners follow GETs, and must not unsubscribe anyone."""
    if not service.token_is_valid(services.vault, token):
        return _page("This link is not valid.", status_code=404)
    return _page("Unsubscribe from this mailing list?", button=True)


@router.post("/lists/unsubscribe/{token}", include_in_schema=False)
async def unsubscribe(token: str, services: ServicesDep) -> HTMLResponse:
    """The page's button, and RFC 8058 one-click alike: the membership is unsubscribed."""
    done = await _read(services, lambda session: service.unsubscribe(
        session, services.vault, token), write=True)
    if not done:
        return _page("This link is not valid.", status_code=404)
    return _page("You have been unsubscribed from this mailing list.")
