"""`/app/templates`: a domain's stored templates and their versions (the active one's
content shown as text, never rendered), created and deleted through the templates service
the API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mailhaven.deps import ServicesDep
from mailhaven.errors import MailhavenError, NotFound
from mailhaven.templates import service
from mailhaven.web.core import (
    PageRefused,
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

router = web_router()
BASE = "/app/templates"
FIELDS = ("name", "description", "template", "tag", "comment")


@dataclass
class Listed:
    domains: list[str]
    domain: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


async def _render_list(request: Request, services: ServicesDep, account_id: str, domain: str,
                       *, status_code: int = 200, error: str | None = None,
                       values: dict[str, str] | None = None) -> Response:
    def work(session: Session) -> Listed:
        names, found = chosen(session, account_id, domain)
        if found is None:
            return Listed(names)
        listed = service.listing(session, services.vault, found, page=None, pivot=None,
                                 limit=service.MAX_TEMPLATES)
        counts = service.summaries(session, found)
        items = [{**item, "versions": counts.get(item["name"], (0, None))[0],
                  "active": counts.get(item["name"], (0, None))[1]} for item in listed.items]
        return Listed(names, found.name, items)

    listed = await in_db(services, work)
    return page(request, "app_templates.html", status_code=status_code, error=error,
                listed=listed, values=values or {})


@router.get(BASE)
async def templates(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _render_list(request, services, viewer.account_id,
                              request.query_params.get("domain", ""))


@router.post(BASE + "/{domain_name}")
async def create(domain_name: str, request: Request, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    fields = {name: form.get(name) for name in FIELDS if form.get(name)}
    now = services.clock.now()

    def work(session: Session) -> str:
        domain = owned(session, viewer.account_id, domain_name)
        made = service.create(session, services.vault, domain, fields, now)
        audited(session, services, viewer, "web.template_created", f"domain:{domain.id}",
              template=made["template"]["id"])
        return str(made["template"]["name"])

    try:
        name = await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render_list(request, services, viewer.account_id, domain_name,
                                  status_code=400, error=exc.message, values=fields)
    return redirect(request, f"{BASE}/{domain_name}/{name}", flash="Template created.")


async def _render_one(request: Request, services: ServicesDep, account_id: str,
                      domain_name: str, name: str, *, status_code: int = 200,
                      error: str | None = None, values: dict[str, str] | None = None,
                      ) -> Response:
    def work(session: Session) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        domain = owned(session, account_id, domain_name)
        try:
            template, versions = service.versions(session, services.vault, domain, name,
                                                  page=None, pivot=None,
                                                  limit=service.MAX_VERSIONS)
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None
        return template, versions.items

    template, versions = await in_db(services, work)
    active = next((v for v in versions if v["active"]), None)
    return page(request, "app_template.html", status_code=status_code, error=error,
                domain=domain_name, stored=template, versions=versions, active=active,
                values=values or {})


@router.get(BASE + "/{domain_name}/{name}")
async def template(domain_name: str, name: str, request: Request, services: ServicesDep,
                   viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _render_one(request, services, viewer.account_id, domain_name, name)


@router.post(BASE + "/{domain_name}/{name}/versions")
async def add_version(domain_name: str, name: str, request: Request, services: ServicesDep,
                      viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    fields = {k: form.get(k) for k in ("template", "tag", "comment", "active") if form.get(k)}
    now = services.clock.now()

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        made = service.create_version(session, services.vault, domain, name, fields, now)
        audited(session, services, viewer, "web.template_version_added", f"domain:{domain.id}",
              template=made["template"]["id"])

    try:
        await in_db(services, work, write=True)
    except NotFound:
        return await _render_one(request, services, viewer.account_id, domain_name, name)
    except MailhavenError as exc:
        return await _render_one(request, services, viewer.account_id, domain_name, name,
                                 status_code=400, error=exc.message, values=fields)
    return redirect(request, f"{BASE}/{domain_name}/{name}", flash="Version added.")


@router.post(BASE + "/{domain_name}/{name}/versions/{tag}/{action}")
async def change_version(domain_name: str, name: str, tag: str, action: str,
                         request: Request, services: ServicesDep,
                         viewer: ViewerDep) -> Response:
    """Make a version the active one, or delete it."""
    await posted_form(request)
    require(viewer, "manage_sending")
    if action not in ("activate", "delete"):
        raise PageRefused(404, "There is nothing here.")

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        try:
            if action == "activate":
                service.update_version(session, services.vault, domain, name, tag,
                                       {"active": "yes"})
            else:
                service.remove_version(session, domain, name, tag)
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None
        audited(session, services, viewer, f"web.template_version_{action}d",
              f"domain:{domain.id}", template=name, version=tag)

    await in_db(services, work, write=True)
    done = "is now active" if action == "activate" else "deleted"
    return redirect(request, f"{BASE}/{domain_name}/{name}", flash=f"Version {tag} {done}.")


@router.post(BASE + "/{domain_name}/{name}/delete")
async def delete(domain_name: str, name: str, request: Request, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_sending")

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        try:
            service.remove(session, services.vault, domain, name)
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None
        audited(session, services, viewer, "web.template_deleted", f"domain:{domain.id}")

    await in_db(services, work, write=True)
    return redirect(request, link(BASE, domain=domain_name), flash="Template deleted.")
