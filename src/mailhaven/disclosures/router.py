"""`/v1/privacy/disclosures`: the account's disclosure log (SPEC N10), recorded by hand
(an authority's request) and read back. Tag "privacy": reading needs the privacy
permission, recording manage_account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.disclosures import service
from mailhaven.disclosures.models import KINDS
from mailhaven.errors import BadRequest
from mailhaven.http import in_thread, read_form, read_json
from mailhaven.openapi import Field, json_body, query

router = APIRouter(tags=["privacy"])
MAX_FORM_BYTES = 1024 * 1024  # up to 10,000 subjects


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadRequest("lists of strings expected for category and subject")


async def _fields(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The single fields and the repeatable ones (category, subject), from a form (fields
    repeated) or a JSON object (lists)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("a JSON object expected")
        single = {k: v for k, v in body.items() if isinstance(v, str)}
        many = {name: _values(body.get(name, body.get(f"{name}s")))
                for name in ("category", "subject")}
        if "data_categories" in body:
            many["category"] = _values(body["data_categories"])
        return single, many
    fields, _files = await read_form(request, MAX_FORM_BYTES)
    single, many = {}, {"category": [], "subject": []}
    for key, value in fields:
        if key in ("category", "data_categories"):
            many["category"].append(value)
        elif key in ("subject", "subjects"):
            many["subject"].append(value)
        else:
            single[key] = value
    return single, many


DISCLOSURE = (
    Field("recipient", "Who received the data", required=True),
    Field("kind", "What kind of party", required=True, enum=KINDS),
    Field("legal_basis", "The legal basis (Article 6)", required=True),
    Field("purpose", "Why", required=True),
    Field("category", "A category of data disclosed", repeated=True),
    Field("subject", "A data subject's address", repeated=True),
    Field("decided_by", "Who decided (default: this API key's account)"),
    Field("endpoint", "Where Article 19 notices are POSTed (https)"),
    Field("reference", "Your reference"),
    Field("subprocessor_id", "The register's sub-processor it went to"))
DISCLOSURE_BODY = json_body(
    {"type": "object", "properties": {
        **{f.name: {"type": "string", "description": f.description} for f in DISCLOSURE
           if not f.repeated},
        **{f.name: {"type": "array", "items": {"type": "string"},
                    "description": f.description} for f in DISCLOSURE if f.repeated}}},
    {"recipient": "Tax office", "kind": "authority", "legal_basis": "legal obligation",
     "purpose": "audit", "category": ["contact"], "subject": ["ann@example.com"]},
    form_too=DISCLOSURE)


@router.post("/v1/privacy/disclosures", openapi_extra=DISCLOSURE_BODY, responses={
    201: {"description": "Recorded", "content": {"application/json": {
        "schema": {"type": "object"}}}}})
async def record_disclosure(request: Request, services: ServicesDep,
                            account_id: AccountDep) -> JSONResponse:
    single, many = await _fields(request)
    now = services.clock.now()

    def run() -> dict:
        with services.db.transaction() as session:
            done = service.record(
                session, services.vault, account_id=account_id,
                recipient=single.get("recipient", ""), kind=single.get("kind", ""),
                legal_basis=single.get("legal_basis") or single.get("basis", ""),
                purpose=single.get("purpose", ""), categories=many["category"],
                subjects=many["subject"],
                decided_by=single.get("decided_by") or f"account:{account_id} (API)",
                now=now, endpoint=single.get("endpoint"), reference=single.get("reference"),
                subprocessor_id=single.get("subprocessor_id") or None,
                main_db=services.main_db,
                allow_http=services.settings.webhook_allow_private)
            shown = service.as_json(done.disclosure, done.subjects)
            return {"message": "Disclosure recorded", "disclosure": shown,
                    "signing_key": done.signing_key}

    return JSONResponse(await in_thread(run), status_code=201)


@router.get("/v1/privacy/disclosures", openapi_extra=query(
    Field("limit", "Disclosures per page (default 100)", "integer", example="100"),
    Field("skip", "Disclosures to skip, for the pages after the first (default 0)", "integer",
          example="0")))
async def list_disclosures(request: Request, services: ServicesDep,
                           account_id: AccountDep) -> dict:
    try:
        limit = int(request.query_params.get("limit", "100"))
        skip = int(request.query_params.get("skip", "0"))
    except ValueError:
        raise BadRequest("limit and skip must be whole numbers") from None

    def run() -> list[dict]:
        with services.db.sessions() as session:
            return service.listed(session, account_id, limit=limit, skip=skip)

    items = await in_thread(run)
    base = str(request.url.replace(query=""))
    return {"items": items, "paging": {
        "next": f"{base}?limit={limit}&skip={skip + limit}" if len(items) == limit else None,
        "previous": f"{base}?limit={limit}&skip={max(skip - limit, 0)}" if skip else None}}
