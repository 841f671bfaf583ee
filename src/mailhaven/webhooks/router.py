"""Webhook management in Mailgun's three dialects, and the signing key.

- v3 `/v3/domains/{d}/webhooks[/{name}]`: one list of URLs per event type.
- v4 `/v4/domains/{d}/webhooks`: one URL, many `event_types`; delete by `?url=u1,u2`.
  Accepted on the v3 path too, because Mailgun's Python SDK sends v4 requests there.
- v1 `/v1/webhooks[/{id}]`: account-level webhooks, for every domain of the account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import owned_domain
from mailhaven.errors import BadRequest
from mailhaven.forms import field_dict
from mailhaven.http import form_body, in_thread, json_responses, read_form
from mailhaven.openapi import NO_FIELDS, Field, form, query
from mailhaven.services import Services
from mailhaven.webhooks import openapi as answered
from mailhaven.webhooks import service

router = APIRouter(tags=["webhooks"])
T = TypeVar("T")


async def _run(services: Services, work: Callable[[Session], T], *, write: bool) -> T:
    def run() -> T:
        with services.db.transaction() if write else services.db.sessions() as session:
            return work(session)

    return await in_thread(run)


async def _domain(services: Services, account_id: str, domain_name: str,
                  work: Callable[[Session, str], T], *,
                  write: bool = False) -> tuple[T, dict[str, dict[str, list[str]]]]:
    """Run `work(session, domain_id)` and answer with the domain's webhook map."""
    def run(session: Session) -> tuple[T, dict[str, dict[str, list[str]]]]:
        domain = owned_domain(session, account_id, domain_name)
        result = work(session, domain.id)
        session.flush()
        return result, service.domain_map(session, account_id, domain.id)

    return await _run(services, run, write=write)


URL = Field("url", "The URL to POST the events to", required=True,
            example="https://example.com/hook")
EVENT_TYPES = Field("event_types", "An event type; repeat the field (or separate with commas) "
                    "for several", repeated=True, enum=service.NAMES)
DESCRIPTION = Field("description", "What the webhook is for")
V4_BODY = form(URL, EVENT_TYPES)


async def _fields(request: Request) -> tuple[list[str], list[str], dict[str, str]]:
    fields, _ = await read_form(request)
    urls = [v for k, v in fields if k == "url"]
    types = [t.strip() for k, v in fields if k == "event_types" for t in v.split(",")
             if t.strip()]
    return urls, types, field_dict(fields)


# -- domain webhooks, v3 and v4 ----------------------------------------------------------

@router.get("/v3/domains/{domain_name}/webhooks", openapi_extra=answered.LISTED)
@router.get("/v4/domains/{domain_name}/webhooks", openapi_extra=answered.LISTED)
async def list_webhooks(domain_name: str, services: ServicesDep,
                        account_id: AccountDep) -> dict:
    _, webhooks = await _domain(services, account_id, domain_name, lambda _s, _d: None)
    return {"webhooks": webhooks}


@router.post("/v3/domains/{domain_name}/webhooks", openapi_extra=form_body({
    "id": "the event type (delivered, opened, clicked, unsubscribed, complained, "
          "permanent_fail, temporary_fail, accepted)",
    "url": "a URL to POST the events to; repeat for up to 3",
    "event_types": "with it, the v4 form: one URL for several event types (repeatable)"})
    | answered.CREATED_V3,
    responses=json_responses({
        200: ("Created", {"message": "Webhook has been created",
                          "webhook": {"urls": ["https://example.com/hook"]}}),
        400: ("A missing id or url, or a type that already has URLs",
              {"message": "Missing parameter 'id'"}),
        404: ("Not a domain of this account", {"message": "Domain not found: example.com"})}))
async def create_webhook_v3(domain_name: str, request: Request, services: ServicesDep,
                            account_id: AccountDep) -> dict:
    urls, types, single = await _fields(request)
    if types:  # v4 semantics on the v3 path (Mailgun's Python SDK sends them here)
        return await _add_v4(services, account_id, domain_name, urls, types)
    for name in ("id", "url"):
        if not single.get(name, "").strip():
            raise BadRequest(service.MISSING.format(name=name))
    name = single["id"]
    now = services.clock.now()
    result, _ = await _domain(services, account_id, domain_name,
                              lambda s, d: service.create_urls(s, account_id, d, name, urls,
                                                               now, domain_name=domain_name),
                              write=True)
    return {"message": "Webhook has been created", "webhook": {"urls": result}}


@router.post("/v4/domains/{domain_name}/webhooks", openapi_extra=V4_BODY | answered.LISTED)
async def create_webhook_v4(domain_name: str, request: Request, services: ServicesDep,
                            account_id: AccountDep) -> dict:
    urls, types, _ = await _fields(request)
    return await _add_v4(services, account_id, domain_name, urls, types)


async def _add_v4(services: Services, account_id: str, domain_name: str, urls: list[str],
                  types: list[str]) -> dict:
    if len(urls) != 1:
        raise BadRequest("exactly one url is required", key="Reason")
    now = services.clock.now()
    _, webhooks = await _domain(services, account_id, domain_name,
                                lambda s, d: service.add_url(s, account_id, d, urls[0], types,
                                                             now), write=True)
    return {"webhooks": webhooks}


@router.put("/v4/domains/{domain_name}/webhooks", openapi_extra=V4_BODY | answered.LISTED)
@router.put("/v3/domains/{domain_name}/webhooks", openapi_extra=V4_BODY | answered.LISTED)
async def update_webhook_v4(domain_name: str, request: Request, services: ServicesDep,
                            account_id: AccountDep) -> dict:
    urls, types, _ = await _fields(request)
    if len(urls) != 1:
        raise BadRequest("exactly one url is required", key="Reason")
    now = services.clock.now()
    _, webhooks = await _domain(services, account_id, domain_name,
                                lambda s, d: service.replace_url(s, account_id, d, urls[0],
                                                                 types, now), write=True)
    return {"webhooks": webhooks}


DELETE_URLS = query(Field("url", "A URL to remove from every event type: repeat the parameter "
                          "or separate URLs with commas", repeated=True,
                          example="https://hooks.example.com/mailgun")) | answered.LISTED


@router.delete("/v4/domains/{domain_name}/webhooks", openapi_extra=DELETE_URLS)
@router.delete("/v3/domains/{domain_name}/webhooks", openapi_extra=DELETE_URLS)
async def delete_webhooks_v4(domain_name: str, request: Request, services: ServicesDep,
                             account_id: AccountDep) -> dict:
    urls = [u.strip() for value in request.query_params.getlist("url")
            for u in value.split(",") if u.strip()]
    now = services.clock.now()
    _, webhooks = await _domain(services, account_id, domain_name,
                                lambda s, d: service.delete_urls(s, account_id, d, urls, now),
                                write=True)
    return {"webhooks": webhooks}


@router.get("/v1/admin/domains/{domain_name}/webhook_deliveries", openapi_extra=query(
    Field("limit", "How many POSTs, newest first: 1 to 1000 (default 100)", "integer",
          example="100"),
    Field("status", "Only POSTs in this state", example="gave-up")))
async def webhook_deliveries(domain_name: str, request: Request, services: ServicesDep,
                             account_id: AccountDep) -> dict:
    """Mailhaven extension: recent webhook POSTs and every attempt of each."""
    try:
        limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    status = request.query_params.get("status")
    items, _ = await _domain(services, account_id, domain_name,
                             lambda s, d: service.recent_deliveries(s, account_id, d,
                                                                    limit=limit,
                                                                    status=status))
    return {"items": items}


@router.get("/v3/domains/{domain_name}/webhooks/{name}", openapi_extra=answered.ONE)
async def get_webhook(domain_name: str, name: str, services: ServicesDep,
                      account_id: AccountDep) -> dict:
    service.valid_names([name], key="message")
    _, webhooks = await _domain(services, account_id, domain_name, lambda _s, _d: None)
    return {"webhook": {"urls": webhooks.get(name, {}).get("urls", [])}}


@router.put("/v3/domains/{domain_name}/webhooks/{name}", openapi_extra=form(
    Field("url", "A URL to POST the events to; repeat for up to 3", required=True,
          repeated=True)) | answered.UPDATED)
async def update_webhook(domain_name: str, name: str, request: Request,
                         services: ServicesDep, account_id: AccountDep) -> dict:
    urls, _, _ = await _fields(request)
    now = services.clock.now()
    result, _ = await _domain(services, account_id, domain_name,
                              lambda s, d: service.set_urls(s, account_id, d, name, urls, now),
                              write=True)
    return {"message": "Webhook has been updated", "webhook": {"urls": result}}


@router.delete("/v3/domains/{domain_name}/webhooks/{name}", openapi_extra=answered.DELETED)
async def delete_webhook(domain_name: str, name: str, services: ServicesDep,
                         account_id: AccountDep) -> dict:
    service.valid_names([name], key="message")
    now = services.clock.now()
    removed, _ = await _domain(services, account_id, domain_name,
                               lambda s, d: service.remove_name(s, account_id, d, name, now),
                               write=True)
    return {"message": "Webhook has been deleted", "webhook": {"urls": removed}}


# -- account webhooks, v1 ----------------------------------------------------------------

WEBHOOK_IDS = Field("webhook_ids", "Only these webhooks: ids separated by commas",
                    example="6f0483b02a29fa9e59bd0cf3,0a9c2b02a29fa9e59bd0cf31")


def _ids(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    return [i.strip() for i in raw.split(",") if i.strip()] if raw else None


@router.get("/v1/webhooks", openapi_extra=query(WEBHOOK_IDS) | answered.ACCOUNT_LISTED)
async def list_account_webhooks(request: Request, services: ServicesDep,
                                account_id: AccountDep) -> dict:
    ids = _ids(request, "webhook_ids")
    hooks = await _run(services, lambda s: [service.account_json(h) for h in
                                            service.account_hooks(s, account_id, ids)],
                       write=False)
    return {"webhooks": hooks}


@router.post("/v1/webhooks",
             openapi_extra=form(URL, EVENT_TYPES, DESCRIPTION) | answered.ACCOUNT_CREATED)
async def create_account_webhook(request: Request, services: ServicesDep,
                                 account_id: AccountDep) -> dict:
    urls, types, single = await _fields(request)
    if len(urls) != 1:
        raise BadRequest("exactly one url is required")
    now = services.clock.now()
    webhook_id = await _run(services, lambda s: service.create_account_hook(
        s, account_id, urls[0], types, single.get("description", ""), now).id, write=True)
    return {"webhook_id": webhook_id}


@router.get("/v1/webhooks/{webhook_id}", openapi_extra=answered.ACCOUNT_ONE)
async def get_account_webhook(webhook_id: str, services: ServicesDep,
                              account_id: AccountDep) -> dict:
    return await _run(services, lambda s: service.account_json(
        service.account_hook(s, account_id, webhook_id)), write=False)


@router.put("/v1/webhooks/{webhook_id}", openapi_extra=form(
    Field("url", "The new URL"), EVENT_TYPES, DESCRIPTION) | answered.ACCOUNT_UPDATED)
async def update_account_webhook(webhook_id: str, request: Request, services: ServicesDep,
                                 account_id: AccountDep) -> dict:
    urls, types, single = await _fields(request)
    if len(urls) > 1:
        raise BadRequest("only one url is allowed")
    await _run(services, lambda s: service.update_account_hook(
        s, account_id, webhook_id, urls[0] if urls else None, types,
        single.get("description")), write=True)
    return {"message": "Webhook updated"}


@router.delete("/v1/webhooks/{webhook_id}", openapi_extra=answered.ACCOUNT_DELETED)
async def delete_account_webhook(webhook_id: str, services: ServicesDep,
                                 account_id: AccountDep) -> dict:
    def work(session: Session) -> None:
        service.account_hook(session, account_id, webhook_id)  # 404 if not ours
        service.delete_account_hooks(session, account_id, [webhook_id])

    await _run(services, work, write=True)
    return {"message": "Webhook deleted"}


@router.delete("/v1/webhooks", openapi_extra=query(
    WEBHOOK_IDS, Field("all", "true: delete every webhook of the account (when no "
                       "`webhook_ids`)", enum=("true", "false"))))
async def delete_account_webhooks(request: Request, services: ServicesDep,
                                  account_id: AccountDep) -> dict:
    ids = _ids(request, "webhook_ids")
    if ids is None and request.query_params.get("all", "").lower() != "true":
        raise BadRequest("specify webhook_ids or all=true")
    count = await _run(services, lambda s: service.delete_account_hooks(s, account_id, ids),
                       write=True)
    return {"message": f"{count} webhooks deleted"}


# -- the signing key ---------------------------------------------------------------------

@router.get("/v5/accounts/http_signing_key")
async def get_signing_key(services: ServicesDep, account_id: AccountDep) -> dict:
    key = await _run(services, lambda s: service.signing_key(s, services.vault, account_id),
                     write=True)  # made on first use
    return {"http_signing_key": key}


@router.post("/v5/accounts/http_signing_key", openapi_extra=NO_FIELDS)
async def regenerate_signing_key(services: ServicesDep, account_id: AccountDep) -> dict:
    key = await _run(services, lambda s: service.signing_key(s, services.vault, account_id,
                                                             regenerate=True), write=True)
    return {"message": "regenerated HTTP signing key for account", "http_signing_key": key}
