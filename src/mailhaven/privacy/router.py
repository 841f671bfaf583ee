"""`/v1/privacy/…`: data-subject requests, the processor API, consents, account deletion.

Mailhaven's own namespace (SPEC interface contract). Account holders authenticate as for
every API call; a recipient's request needs no key and is confirmed by a one-time link.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select

from mailhaven import openapi
from mailhaven.controls import service as controls
from mailhaven.deps import AccountDep, ServicesDep, current_account
from mailhaven.errors import BadRequest, Gone, NotFound
from mailhaven.exports.response import zip_response
from mailhaven.exports.service import export_account, export_recipient
from mailhaven.forms import field_dict, flag
from mailhaven.http import in_thread, read_form
from mailhaven.privacy import form, intake, notices, service
from mailhaven.privacy import requests as reqs
from mailhaven.privacy.deps import AccountContext, SubjectContext
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.services import Services
from mailhaven.web.core import SECURITY_HEADERS

log = logging.getLogger("mailhaven.privacy")
router = APIRouter(tags=["privacy"])
templates = Environment(loader=PackageLoader("mailhaven", "web/templates"),
                        autoescape=select_autoescape())
RECIPIENT_ACCEPTED = ("If we hold data about this address, a link to confirm the request "
                      "has been sent to it.")


async def _optional_account(request: Request, services: Services) -> str | None:
    if not request.headers.get("authorization"):
        return None
    return await current_account(request, services)


# -- requests ----------------------------------------------------------------------------

REQUEST_BODY = {
    **openapi.form(
        openapi.Field("type", "The right exercised", required=True, enum=reqs.RIGHTS),
        openapi.Field("email", "Without a key: the recipient's address, who confirms by a "
                      "link mailed to it. With one: a recipient's request the customer "
                      "verified (without it, the account holder's own)"),
        openapi.Field("domain", "Without a key: the domain that mailed the recipient"),
        openapi.Field("name", "The requester's name"),
        openapi.Field("new_email", "rectification: the corrected address"),
        openapi.Field("purpose", "objection, withdraw-consent: the purpose",
                      enum=controls.PURPOSES),
        openapi.Field("lift", "restriction: lift it rather than ask for it", "boolean"),
        openapi.Field("confirm", "erasure of the account holder: the account's id "
                      "(also read from the query string)")),
    "security": [{}, {"basicAuth": []}]}  # a recipient files one without a key
CONFIRM = openapi.Field("confirm", "The account's id, repeated to confirm the erasure of the "
                        "account (also read from the body)")
TOKEN = openapi.Field("token", "Without an API key: the recipient's one-time token, from "
                      "the link they were sent")


@router.post("/v1/privacy/requests", openapi_extra=REQUEST_BODY | openapi.query(CONFIRM),
             responses={
    201: {"description": "Filed (with a key)", "content": {"application/json": {
        "schema": {"type": "object"}}}},
    202: {"description": "Without a key: the same answer whether or not we hold data",
          "content": {"application/json": {"schema": {"type": "object"},
                                           "example": {"message": RECIPIENT_ACCEPTED}}}}})
async def create_request(request: Request, services: ServicesDep) -> JSONResponse:
    """With an API key: the account holder's own request, or (with `email`) a recipient's
    request relayed by the customer, who verified them. Without: a recipient's request,
    confirmed by a link sent to the address."""
    account_id = await _optional_account(request, services)
    fields = field_dict((await read_form(request, form.MAX_FORM_BYTES))[0])
    asked = intake.asked(fields)
    if account_id is not None:
        confirm = fields.get("confirm") or request.query_params.get("confirm")
        shown = await in_thread(lambda: intake.file_for_account(
            services, account_id, asked, confirm=confirm))
        if asked.right == "erasure" and shown["subject_type"] == "holder":
            services.key_cache.forget_account(account_id)
        return JSONResponse(shown, status_code=201)
    who = intake.recipient(fields)
    client = request.client.host if request.client else None
    await in_thread(lambda: intake.file_for_recipient(services, asked, who, client=client))
    return JSONResponse({"message": RECIPIENT_ACCEPTED}, status_code=202)


@router.get("/v1/privacy/requests", openapi_extra=openapi.query(openapi.Field(
    "overdue", "yes: only the requests past their deadline", "boolean")))
async def list_requests(request: Request, services: ServicesDep,
                        account_id: AccountDep) -> dict:
    now = services.clock.now()
    only_overdue = flag(request.query_params.get("overdue"))

    def run() -> list[dict]:
        with services.db.sessions() as session:
            rows = (reqs.overdue(session, account_id, now) if only_overdue else
                    session.scalars(select(PrivacyRequest).where(
                        PrivacyRequest.account_id == account_id)
                        .order_by(PrivacyRequest.received_at.desc())).all())
            return [reqs.as_json(services.vault, session, r, now) for r in rows]

    return {"items": await in_thread(run)}


@router.get("/v1/privacy/requests/{request_id}", openapi_extra=openapi.query(TOKEN))
async def get_request(request_id: str, request: Request, services: ServicesDep) -> dict:
    """With the API key of the account, or with the recipient's one-time token."""
    token = request.query_params.get("token")
    account_id = None if token else await current_account(request, services)
    now = services.clock.now()

    def run() -> dict:
        with services.db.sessions() as session:
            found = (reqs.by_token(session, token, now=now) if token
                     else reqs.owned(session, account_id or "", request_id))
            if found.id != request_id:
                raise NotFound("Request not found")
            return reqs.as_json(services.vault, session, found, now)

    return await in_thread(run)


@router.get("/v1/privacy/requests/{request_id}/export", openapi_extra=openapi.query(TOKEN))
async def request_export(request_id: str, request: Request, services: ServicesDep,
                         ctx: SubjectContext) -> StreamingResponse:
    """An access or portability request's zip, made when it is fetched (nothing in clear
    is kept): with the account's API key, or the recipient's link (a few times, for a
    day: each download by link is counted in the audit log)."""
    token = request.query_params.get("token")
    account_id = None if token else await current_account(request, services)

    def find() -> tuple[PrivacyRequest, dict]:
        with (services.db.transaction() if token else services.db.sessions()) as session:
            found = (reqs.by_token(session, token, now=ctx.now, lock=True) if token
                     else reqs.owned(session, account_id or "", request_id))
            if found.id != request_id or found.right not in service.EXPORT_RIGHTS \
                    or found.state != reqs.COMPLETED:
                raise NotFound("No export for this request")
            if token:
                service.hand_over(session, ctx, found)
            return found, reqs.details(services.vault, session, found)

    found, given = await in_thread(find)
    if found.subject_type == "holder":
        return await zip_response(lambda path: export_account(
            services.db, services.vault, found.account_id, path,
            hostname=services.settings.hostname, clock=services.clock,
        directory=services.main_db), "account-export.zip")
    if not given.get("email"):
        raise NotFound("No export for this request")
    return await zip_response(lambda path: export_recipient(
        services.db, services.vault, found.account_id, given["email"], path,
        clock=services.clock, directory=services.main_db), "recipient-export.zip")


@router.post("/v1/privacy/requests/{request_id}/extend", openapi_extra=openapi.form(
    openapi.Field("months", "By how many months (default 2)", "integer", enum=("1", "2")),
    openapi.Field("reason", "Why: told to the requester")))
async def extend_request(request_id: str, request: Request, services: ServicesDep,
                         account_id: AccountDep, ctx: AccountContext) -> dict:
    fields = field_dict((await read_form(request))[0])
    try:
        months = int(fields.get("months", "2"))
    except ValueError:
        raise BadRequest("months must be 1 or 2") from None
    now = services.clock.now()

    def run() -> dict:
        with services.db.transaction() as session:
            found = reqs.owned(session, account_id, request_id, lock=True)
            service.extend(session, ctx, found, months=months,
                           reason=fields.get("reason", ""))
            notices.tell_extended(services, session, found, now)
            return reqs.as_json(services.vault, session, found, now)

    return await in_thread(run)


@router.post("/v1/privacy/requests/{request_id}/deny", openapi_extra=openapi.form(
    openapi.Field("reason", "Why: told to the requester")))
async def deny_request(request_id: str, request: Request, services: ServicesDep,
                       account_id: AccountDep, ctx: AccountContext) -> dict:
    reason = field_dict((await read_form(request))[0]).get("reason", "")
    now = services.clock.now()

    def run() -> dict:
        with services.db.transaction() as session:
            found = reqs.owned(session, account_id, request_id, lock=True)
            service.deny(session, ctx, found, reason=reason)
            return reqs.as_json(services.vault, session, found, now)

    return await in_thread(run)


def _page(state: str, *, status_code: int = 200, **values: object) -> HTMLResponse:
    body = templates.get_template("privacy_request.html").render(state=state, **values)
    return HTMLResponse(body, status_code=status_code,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store",
                                 "Referrer-Policy": "no-referrer"})


@router.get("/v1/privacy/verify/{token}", include_in_schema=False)
async def confirm_page(token: str, services: ServicesDep) -> HTMLResponse:
    """Asks before it acts: mail scanners follow links."""
    now = services.clock.now()

    def run() -> PrivacyRequest | None:
        with services.db.sessions() as session:
            try:
                return reqs.by_token(session, token, now=now)
            except NotFound:
                return None

    try:
        found = await in_thread(run)
    except Gone:
        return _page("expired", status_code=410)
    if found is None:
        return _page("invalid", status_code=404)
    return _page("confirm" if found.state == reqs.UNVERIFIED else "done",
                 right=found.right.replace("-", " "), request=found.id, token=token,
                 state_name=found.state)


@router.post("/v1/privacy/verify/{token}", include_in_schema=False)
async def confirm(token: str, services: ServicesDep, ctx: SubjectContext) -> HTMLResponse:

    def run() -> PrivacyRequest | None:
        with services.db.transaction() as session:
            try:
                found = reqs.by_token(session, token, now=ctx.now, lock=True)
            except NotFound:
                return None
            service.verify_and_carry_out(session, ctx, found)
            return found

    try:
        found = await in_thread(run)
    except Gone:
        return _page("expired", status_code=410)
    if found is None:
        return _page("invalid", status_code=404)
    return _page("done", right=found.right.replace("-", " "), request=found.id, token=token,
                 state_name=found.state)


# -- the processor API: one recipient ------------------------------------------------------

def recipient_address(address: str) -> str:
    """The address named in the path, which the server has percent-decoded once already:
    decoding it again would turn `pct%41x@…` into `pctax@…`, another person (issue 10)."""
    return intake.address(address, "address")


RecipientAddress = Annotated[str, Depends(recipient_address)]
# `:path`, so an address with a percent-encoded "/" (legal in a local part) still matches.
# The address is read after the key (a 401 before any 400), as every route here does.
recipients = APIRouter(prefix="/v1/privacy/recipients/{address:path}")


@recipients.get(
    "",
    summary="Export everything held about one recipient (Mailhaven extension)",
    description="A zip of export.json (schema `mailhaven-export` v1, docs/privacy.md) and a "
                "CSV per category: the recipient's events, suppressions, queued and delivered "
                "copies and the metadata of the messages they received, across the account's "
                "domains. The address is percent-encoded in the path.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}},
               404: {"description": "Nothing is held about the address"}})
async def export_recipient_data(services: ServicesDep, account_id: AccountDep,
                                email: RecipientAddress) -> StreamingResponse:
    return await zip_response(lambda path: export_recipient(
        services.db, services.vault, account_id, email, path, clock=services.clock,
        directory=services.main_db),
        "recipient-export.zip")


@recipients.delete("")
async def erase_recipient(services: ServicesDep, account_id: AccountDep,
                          ctx: AccountContext, email: RecipientAddress) -> dict:
    """Erase everything the account holds about one recipient, across its domains."""
    def run() -> dict:
        with services.db.transaction() as session:
            return {"message": "Recipient erased",
                    **service.erase(session, ctx, account_id, email).as_json()}

    return await in_thread(run)


router.include_router(recipients)


# -- consents, account deletion ------------------------------------------------------------

@router.post("/v1/privacy/consents", openapi_extra=openapi.form(
    openapi.Field("granted", "A grant (yes) or a withdrawal (no)", "boolean", required=True),
    openapi.Field("purpose", "What the consent is for", required=True,
                  enum=controls.PURPOSES),
    openapi.Field("email", "The recipient's address; without it, the account holder's"),
    openapi.Field("source", "Where it was given (default: api)"),
    openapi.Field("notice_version", "The notice version it was given under")),
    responses={201: {"description": "Recorded", "content": {"application/json": {
        "schema": {"type": "object"}}}}})
async def record_consent(request: Request, services: ServicesDep,
                         account_id: AccountDep, ctx: AccountContext) -> JSONResponse:
    """A grant or a withdrawal, for a recipient (`email`) or the account holder."""
    fields = field_dict((await read_form(request))[0])
    if "granted" not in fields:
        raise BadRequest("granted must be yes or no")
    email = intake.address(fields["email"]) if fields.get("email") else None
    index = (services.vault.blind_index(account_id, email) if email
             else controls.holder_index(account_id))

    def run() -> dict:
        with services.db.transaction() as session:
            return controls.consent_json(service.consent(
                session, ctx, account_id, index, fields.get("purpose", ""),
                granted=flag(fields["granted"]), source=fields.get("source") or "api",
                notice_version=fields.get("notice_version")))

    return JSONResponse(await in_thread(run), status_code=201)


@router.get("/v1/privacy/consents", openapi_extra=openapi.query(openapi.Field(
    "email", "A recipient's consents and controls (default: the account holder's)",
    example="bob@example.com")))
async def get_consents(request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict:
    email = request.query_params.get("email")
    index = (services.vault.blind_index(account_id, intake.address(email)) if email
             else controls.holder_index(account_id))

    def run() -> dict:
        with services.db.sessions() as session:
            return {"items": controls.ledger(session, account_id, index),
                    **controls.control_json(session, account_id, index)}

    return await in_thread(run)


@router.delete("/v1/privacy/account", openapi_extra=openapi.query(openapi.Field(
    "confirm", "The account's id, repeated to confirm the deletion", required=True)))
async def delete_account(request: Request, services: ServicesDep,
                         account_id: AccountDep, ctx: AccountContext) -> dict:
    """Account deletion (N8); `confirm` must repeat the account id."""
    service.confirm_deletion(account_id, request.query_params.get("confirm"))

    def run() -> dict:
        with services.db.transaction() as session:
            return service.delete_account(session, ctx, account_id).as_json()

    record = await in_thread(run)
    services.key_cache.forget_account(account_id)
    return {"message": "Account deleted", **record}
