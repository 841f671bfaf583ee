"""`GET /v3/{domain}/stats/total` and the tag endpoints, in Mailgun's shapes."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from mailhaven.clock import format_rfc2822
from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest
from mailhaven.http import query_url, read_form
from mailhaven.openapi import Field, form, query
from mailhaven.services import Services
from mailhaven.stats import openapi as answered
from mailhaven.stats import service, tags

router = APIRouter(tags=["stats"])

PAGES = ("first", "last", "next", "prev", "previous")
AGGREGATES = {"countries": "country", "providers": "provider", "devices": "device"}
# Mailgun's per-tag breakdowns by recipient country, mailbox provider and device: Mailhaven
# keeps no such counters (they would come from recipients' IPs and user agents).
UNSUPPORTED_FILTERS = ("provider", "device", "country")
STATS_QUERY = query(  # Mailgun's names and meanings
    Field("event", "The type of event to count; repeat the parameter for more", required=True,
          repeated=True, example="delivered"),
    Field("start", "The start of the range: an RFC 2822 date or epoch seconds (default: 7 "
          "days before the end)", example="Mon, 30 Nov 2026 00:00:00 GMT"),
    Field("end", "The end of the range: an RFC 2822 date or epoch seconds (default: now)",
          example="Sun, 06 Dec 2026 00:00:00 GMT"),
    Field("resolution", "How counts are grouped", enum=("hour", "day", "month"),
          example="day"),
    Field("duration", "The range's length back from `end`, overriding `start`: a number "
          "and h, d or m", example="7d"))


async def _stats(domain_name: str, request: Request, services: Services, account_id: str,
                 tag: str = "") -> dict:
    params = request.query_params
    events = params.getlist("event")
    if not events:
        raise BadRequest("Missing mandatory parameter: event")
    if tag and (unsupported := [f for f in UNSUPPORTED_FILTERS if params.get(f)]):
        raise BadRequest(f"Filter '{unsupported[0]}' is not supported")
    start, end, resolution = service.window(
        start=params.get("start"), end=params.get("end"), duration=params.get("duration"),
        resolution=params.get("resolution"), now=services.clock.now())

    def work(session: Session, domain: Domain) -> dict:
        about = tags.get(session, domain.id, tag) if tag else {}
        stats = service.totals(session, domain.id, events=events, start=start, end=end,
                               resolution=resolution, tag=tags.name(tag))
        return {**({"tag": about["tag"], "description": about["description"]} if tag else {}),
                "start": format_rfc2822(start), "end": format_rfc2822(end),
                "resolution": resolution, "stats": stats}
    return await on_domain(services, account_id, domain_name, work)


@router.get("/v3/{domain_name}/stats/total", openapi_extra=STATS_QUERY | answered.TOTALS)
async def stats_total(domain_name: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict:
    return await _stats(domain_name, request, services, account_id)


TAG_STATS = STATS_QUERY | answered.TAG_STATS


# -- tags ---------------------------------------------------------------------------------
@router.get("/v3/{domain_name}/tags", openapi_extra=answered.TAGS)
async def list_tags(domain_name: str, request: Request, services: ServicesDep,
                    account_id: AccountDep, limit: int = Query(100, ge=1, le=1000),
                    page: str | None = None, tag: str | None = None,
                    prefix: str | None = None) -> dict:
    if page not in (None, *PAGES):
        raise BadRequest("page must be one of first, last, next, prev")
    items = await on_domain(services, account_id, domain_name, lambda s, d: tags.page(
        s, d.id, limit=limit, direction=page, pivot=tag, prefix=prefix))
    url = f"{str(request.base_url).rstrip('/')}/v3/{domain_name}/tags"
    first = items[0]["tag"] if items else tag
    last = items[-1]["tag"] if items else tag
    return {"items": items, "paging": {
        "first": query_url(url, limit=limit, page="first", prefix=prefix),
        "last": query_url(url, limit=limit, page="last", prefix=prefix),
        "next": query_url(url, limit=limit, page="next", tag=last, prefix=prefix),
        "previous": query_url(url, limit=limit, page="prev", tag=first, prefix=prefix)}}


# Mailgun's documented paths put the tag in the path (/tags/{tag}); its OpenAPI description
# puts it in the query (/tag?tag=, which also takes a tag with "/"). Each handler serves
# both: FastAPI reads `tag` from the path where the path has it, else from the query.
@router.get("/v3/{domain_name}/tags/{tag}", openapi_extra=answered.ONE_TAG)
@router.get("/v3/{domain_name}/tag", openapi_extra=answered.ONE_TAG)
async def get_tag(domain_name: str, tag: str, services: ServicesDep,
                  account_id: AccountDep) -> dict:
    return await on_domain(services, account_id, domain_name,
                           lambda s, d: tags.get(s, d.id, tag))


DESCRIPTION = Field("description", "The tag's description (also read from the query string)")
TAG_BODY = form(DESCRIPTION) | query(DESCRIPTION) | answered.TAG_UPDATED


@router.put("/v3/{domain_name}/tags/{tag}", openapi_extra=TAG_BODY)
@router.put("/v3/{domain_name}/tag", openapi_extra=TAG_BODY)
async def put_tag(domain_name: str, tag: str, request: Request, services: ServicesDep,
                  account_id: AccountDep) -> dict:
    fields, _ = await read_form(request)
    description = next((v for k, v in fields if k == "description"),
                       request.query_params.get("description"))
    await on_domain(services, account_id, domain_name,
                    lambda s, d: tags.describe(s, d.id, tag, description), write=True)
    return {"message": "Tag updated"}


@router.delete("/v3/{domain_name}/tags/{tag}", openapi_extra=answered.TAG_DELETED)
@router.delete("/v3/{domain_name}/tag", openapi_extra=answered.TAG_DELETED)
async def delete_tag(domain_name: str, tag: str, services: ServicesDep,
                     account_id: AccountDep) -> dict:
    await on_domain(services, account_id, domain_name,
                    lambda s, d: tags.remove(s, d.id, tag), write=True)
    return {"message": "Tag deleted"}


@router.get("/v3/{domain_name}/tags/{tag}/stats", openapi_extra=TAG_STATS)
@router.get("/v3/{domain_name}/tag/stats", openapi_extra=TAG_STATS)
async def tag_stats(domain_name: str, tag: str, request: Request, services: ServicesDep,
                    account_id: AccountDep) -> dict:
    return await _stats(domain_name, request, services, account_id, tag)


@router.get("/v3/{domain_name}/tags/{tag}/stats/aggregates/{kind}")
async def tag_aggregates(domain_name: str, tag: str, kind: str, services: ServicesDep,
                         account_id: AccountDep) -> dict:
    if kind not in AGGREGATES:
        raise BadRequest("aggregates are countries, providers or devices")
    found = await get_tag(domain_name, tag, services, account_id)
    return {"tag": found["tag"], kind: {}}


@router.get("/v3/{domain_name}/tag/stats/aggregates")
async def tag_aggregates_by_type(domain_name: str, tag: str, services: ServicesDep,
                                 account_id: AccountDep,
                                 kind: str = Query(alias="type")) -> dict:
    if kind not in AGGREGATES.values():
        raise BadRequest("type must be one of country, provider, device")
    found = await get_tag(domain_name, tag, services, account_id)
    return {"tag": found["tag"], kind: {}}


@router.get("/v3/domains/{domain_name}/limits/tag", openapi_extra=answered.LIMITS)
async def tag_limits(domain_name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    return await on_domain(services, account_id, domain_name,
                           lambda s, d: tags.limits(s, d.id))
