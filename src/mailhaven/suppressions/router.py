"""`/v3/{domain}/bounces|unsubscribes|complaints|whitelists`: Mailgun's suppression lists."""

from __future__ import annotations

from itertools import islice

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.forms import field_dict
from mailhaven.http import in_thread, query_url, read_form, read_json, uploaded_file
from mailhaven.openapi import Field, form, json_body
from mailhaven.suppressions import openapi as answered
from mailhaven.suppressions import service
from mailhaven.suppressions.models import KINDS

router = APIRouter(tags=["suppressions"])

ADDED = {"bounces": "Address has been added to the bounces table",
         "unsubscribes": "Address has been added to the unsubscribes table",
         "complaints": "Address has been added to the complaints table",
         "whitelists": "Address/Domain has been added to the allowlists table"}
REMOVED = {"bounces": "Bounced address has been removed",
           "unsubscribes": "Unsubscribe event has been removed",
           "complaints": "Spam complaint has been removed",
           "whitelists": "Allowlist address/domain has been removed"}
CLEARED = {"bounces": "Bounced addresses for this domain have been removed",
           "unsubscribes": "Unsubscribe addresses for this domain have been removed",
           "complaints": "Complaint addresses for this domain have been removed",
           "whitelists": "Allowlist addresses/domains for this domain have been removed"}
IMPORTED = "file uploaded successfully for processing. standby..."


def _batch_message(kind: str, count: int) -> str:
    if kind == "complaints":
        return f"{count} complaint addresses have been added to the complaints table"
    if kind == "whitelists":
        return f"{count} addresses/domains have been added to the allowlists table"
    return f"{count} addresses have been added to the {kind} table"


CREATED_AT = Field("created_at", "When (RFC 2822; default: now)",
                   example="Thu, 13 Oct 2011 18:02:00 +0000")
FIELDS = {  # Mailgun's names and meanings, per list
    "bounces": (Field("address", "The address", required=True),
                Field("code", "The SMTP code of the bounce (default 550)", "integer"),
                Field("error", "The error text"), CREATED_AT),
    "unsubscribes": (Field("address", "The address", required=True),
                     Field("tag", "Unsubscribed from this tag only (* for all)",
                           repeated=True), CREATED_AT),
    "complaints": (Field("address", "The address", required=True), CREATED_AT),
    "whitelists": (Field("address", "An address to allow (or give domain)"),
                   Field("domain", "A whole domain to allow"),
                   Field("reason", "Why")),
}


def _add_body(kind: str) -> dict:
    """One record as a form, or JSON: one object, or an array of up to 1000."""
    record = {"type": "object", "properties": {
        f.name: f.schema() if f.type != "integer" else {"type": ["integer", "string"],
                                                        "description": f.description}
        for f in FIELDS[kind]}}
    example = {"address": "bob@example.com"} if kind != "whitelists" else {
        "domain": "example.com"}
    return json_body({"anyOf": [record, {"type": "array", "items": record,
                                         "maxItems": service.MAX_BATCH}]},
                     [example], form_too=FIELDS[kind])


IMPORT_BODY = form(Field("file", "A CSV file with a header row naming the columns "
                                 "(address, and the list's other fields)", "file",
                         required=True))


def _routes(kind: str) -> None:
    base_path = f"/v3/{{domain_name}}/{kind}"

    async def list_items(domain_name: str, request: Request, services: ServicesDep,
                         account_id: AccountDep, limit: int = Query(100, ge=1, le=1000),
                         page: str | None = None, address: str | None = None,
                         term: str | None = None) -> dict:
        if page not in (None, "first", "next", "previous", "last"):
            raise BadRequest("page must be one of first, next, previous, last")

        def work(session: Session, domain: Domain) -> service.Page:
            return service.listing(session, services.vault, domain, kind, limit=limit,
                                   direction=page, pivot=address, term=term)

        found = await on_domain(services, account_id, domain_name, work)
        url = f"{str(request.base_url).rstrip('/')}/v3/{domain_name}/{kind}"
        return {"items": found.items, "paging": {
            "first": query_url(url, term=term, limit=limit),
            "last": query_url(url, page="last", term=term, limit=limit),
            "next": query_url(url, page="next", address=found.after, term=term, limit=limit),
            "previous": query_url(url, page="previous", address=found.before, term=term,
                                  limit=limit)}}

    async def add_items(domain_name: str, request: Request, services: ServicesDep,
                        account_id: AccountDep) -> dict:
        batch = False
        if request.headers.get("content-type", "").startswith("application/json"):
            records = await read_json(request)
            # An array is a batch; Mailgun's SDK examples also post one record as an object.
            batch = isinstance(records, list)
            records = records if batch else [records]
            if not all(isinstance(r, dict) for r in records):
                raise BadRequest("Request body must be a JSON array of objects")
            if len(records) > service.MAX_BATCH:
                raise BadRequest("Batch size should be less than 1000")
            entries = [service.entry_from(kind, r) for r in records]
        else:
            fields, _ = await read_form(request)
            record: dict = field_dict(fields)
            record["tags"] = [v for k, v in fields if k in ("tag", "tags")]
            entries = [service.entry_from(kind, record)]

        def work(session: Session, domain: Domain) -> int:
            return service.add(session, services.vault, domain, kind, entries, services.clock)

        count = await on_domain(services, account_id, domain_name, work, write=True)
        if batch:
            return {"message": _batch_message(kind, int(count))}
        if kind == "whitelists":
            return {"message": ADDED[kind], "type": entries[0].value_type,
                    "value": entries[0].value}
        return {"message": ADDED[kind], "address": entries[0].value}

    async def import_items(domain_name: str, request: Request, services: ServicesDep,
                           account_id: AccountDep) -> JSONResponse:
        """A CSV file read a row at a time, twice: every row checked (and counted against
        MAILHAVEN_CSV_IMPORT_MAX_ROWS) before any is written, then written a batch per
        transaction."""
        max_rows = services.settings.csv_import_max_rows
        async with uploaded_file(request, ("file", "attachment")) as upload:
            if upload is None:
                raise BadRequest("file parameter is missing")
            await in_thread(lambda: sum(1 for _ in service.csv_entries(
                kind, upload, max_rows=max_rows)))
            upload.seek(0)
            entries = service.csv_entries(kind, upload, max_rows=max_rows)
            while chunk := await in_thread(lambda: list(islice(entries, service.MAX_BATCH))):

                def work(session: Session, domain: Domain,
                         chunk: list[service.Entry] = chunk) -> int:
                    return service.add(session, services.vault, domain, kind, chunk,
                                       services.clock)
                await on_domain(services, account_id, domain_name, work, write=True)
        return JSONResponse({"message": IMPORTED}, status_code=202)

    async def get_item(domain_name: str, value: str, services: ServicesDep,
                       account_id: AccountDep) -> dict:
        def work(session: Session, domain: Domain) -> dict:
            row = service.find(session, services.vault, domain, kind, value)
            keys = services.vault.keys(session, [row.key_id])
            found = service.as_json(services.vault, keys, kind, row)
            if found is None:  # its subject was erased
                raise NotFound(f"Address not found in {service.TABLE[kind]} table")
            return found
        return await on_domain(services, account_id, domain_name, work)

    async def delete_item(domain_name: str, value: str, services: ServicesDep,
                          account_id: AccountDep, tag: str | None = None) -> dict:
        def work(session: Session, domain: Domain) -> None:
            service.remove(session, services.vault, domain, kind, value, tag)
        await on_domain(services, account_id, domain_name, work, write=True)
        return {"message": REMOVED[kind], "value" if kind == "whitelists" else "address": value}

    async def clear_items(domain_name: str, services: ServicesDep,
                          account_id: AccountDep) -> dict:
        def work(session: Session, domain: Domain) -> None:
            service.clear(session, domain, kind)
        await on_domain(services, account_id, domain_name, work, write=True)
        return {"message": CLEARED[kind]}

    router.add_api_route(base_path, list_items, methods=["GET"],
                         openapi_extra=answered.listed(kind))
    router.add_api_route(base_path, add_items, methods=["POST"],
                         openapi_extra=_add_body(kind) | answered.added(kind, ADDED[kind]))
    router.add_api_route(base_path, clear_items, methods=["DELETE"],
                         openapi_extra=answered.cleared(CLEARED[kind]))
    router.add_api_route(f"{base_path}/import", import_items, methods=["POST"],
                         openapi_extra=IMPORT_BODY, responses={202: {
                             "description": "Accepted", "content": {"application/json": {
                                 "schema": {"type": "object"},
                                 "example": {"message": IMPORTED}}}}})
    router.add_api_route(f"{base_path}/{{value}}", get_item, methods=["GET"],
                         openapi_extra=answered.one(kind))
    router.add_api_route(f"{base_path}/{{value}}", delete_item, methods=["DELETE"],
                         openapi_extra=answered.removed(kind, REMOVED[kind]))


for _kind in KINDS:
    _routes(_kind)
