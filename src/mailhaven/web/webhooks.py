"""`/app/webhooks`: a domain's webhook URLs for each of Mailgun's event types, a test POST
on request, and the recent POSTs — through the webhooks service the API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mailhaven.clock import format_rfc2822
from mailhaven.deps import ServicesDep
from mailhaven.errors import MailhavenError
from mailhaven.web.core import (
    ViewerDep,
    audited,
    in_db,
    page,
    posted_form,
    redirect,
    require,
    web_router,
)
from mailhaven.web.sending_config import chosen, link, owned
from mailhaven.webhooks import service
from mailhaven.webhooks.poster import host
from mailhaven.webhooks.sample import send_test

router = web_router()
BASE = "/app/webhooks"
KINDS = ("delivered", "opened", "clicked", "unsubscribed", "complained", "permanent_fail",
         "temporary_fail", "accepted")  # Mailgun's order in its control panel
HISTORY = 50


@dataclass
class Shown:
    domains: list[str]
    domain: str | None = None
    urls: dict[str, list[str]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _history(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = []
    for item in items:
        last = item["attempts"][-1] if item["attempts"] else {}
        shown.append({"kind": item["webhook"], "host": host(item["url"]) or "",
                      "status": item["status"], "attempts": len(item["attempts"]),
                      "answer": last.get("status"), "error": last.get("error") or "",
                      "at": format_rfc2822(last.get("at") or item["created-at"])})
    return shown


async def _render(request: Request, services: ServicesDep, account_id: str, domain: str, *,
                  status_code: int = 200, error: str | None = None) -> Response:
    def work(session: Session) -> Shown:
        names, found = chosen(session, account_id, domain)
        if found is None:
            return Shown(names)
        hooks = service.domain_map(session, account_id, found.id)
        return Shown(names, found.name, {k: hooks.get(k, {}).get("urls", []) for k in KINDS},
                     _history(service.recent_deliveries(session, account_id, found.id,
                                                        limit=HISTORY)))

    shown = await in_db(services, work)
    return page(request, "app_webhooks.html", status_code=status_code, error=error,
                shown=shown, max_urls=service.MAX_URLS)


@router.get(BASE)
async def webhooks(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _render(request, services, viewer.account_id,
                         request.query_params.get("domain", ""))


@router.post(BASE + "/{domain_name}/{kind}")
async def set_urls(domain_name: str, kind: str, request: Request, services: ServicesDep,
                   viewer: ViewerDep) -> Response:
    """The type's URLs become those given (one a line); none removes the webhook."""
    form = await posted_form(request)
    require(viewer, "manage_sending")
    urls = [u.strip() for v in form.getlist("urls") for u in v.splitlines() if u.strip()]
    now = services.clock.now()

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        service.valid_names([kind])
        if urls:
            service.set_urls(session, viewer.account_id, domain.id, kind, urls, now)
        elif kind in service.domain_map(session, viewer.account_id, domain.id):
            service.remove_name(session, viewer.account_id, domain.id, kind, now)
        audited(session, services, viewer, "web.webhook_changed", f"domain:{domain.id}",
              webhook=kind, urls=len(urls))

    try:
        await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render(request, services, viewer.account_id, domain_name,
                             status_code=400, error=exc.message)
    return redirect(request, link(BASE, domain=domain_name),
                    flash=f"Webhook {kind} saved." if urls else f"Webhook {kind} removed.")


@router.post(BASE + "/{domain_name}/{kind}/test")
async def test(domain_name: str, kind: str, request: Request, services: ServicesDep,
               viewer: ViewerDep) -> Response:
    """POST a signed sample event to one of the type's URLs now, and say what it answered."""
    form = await posted_form(request)
    require(viewer, "manage_sending")
    url = form.get("url")

    def work(session: Session) -> bool:
        domain = owned(session, viewer.account_id, domain_name)
        urls = service.domain_map(session, viewer.account_id, domain.id).get(kind, {})
        return url in urls.get("urls", [])

    if not await in_db(services, work):
        return await _render(request, services, viewer.account_id, domain_name,
                             status_code=400, error="Save the URL first, then test it.")
    try:
        tried = await send_test(services, viewer.account_id, domain_name, kind, url)
    except MailhavenError as exc:
        return await _render(request, services, viewer.account_id, domain_name,
                             status_code=400, error=exc.message)
    said = (f"answered HTTP {tried.status}" if tried.status is not None
            else f"failed: {tried.error}")
    return redirect(request, link(BASE, domain=domain_name),
                    flash=f"Test {kind} event POSTed to {tried.host}: {said} "
                          f"({tried.seconds:g} s).")
