"""`/app/domains`: a domain added, its DNS records to publish and verify, its DKIM keys,
its tracking settings; deleting it. The same service functions as `/v4/domains`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailhaven.clock import format_rfc2822
from mailhaven.deps import ServicesDep
from mailhaven.domains import service, verify
from mailhaven.domains.reserved import operator_names
from mailhaven.errors import MailhavenError, NotFound
from mailhaven.http import in_thread
from mailhaven.resolver import make_resolver
from mailhaven.retention.service import bodies_kept_for
from mailhaven.services import Services
from mailhaven.tracking import settings as tracking
from mailhaven.web.core import (
    ViewerDep,
    audited,
    not_found_page,
    page,
    posted_form,
    redirect,
    require,
    web_router,
)

router = web_router()
LISTED = 1000
CLICK_CHOICES = (("no", "Off"), ("yes", "HTML and text"), ("htmlonly", "HTML only"))


async def _list_page(request: Request, services: Services, account_id: str, *,
                     status_code: int = 200, error: str | None = None,
                     name: str = "") -> Response:
    def run() -> list[Any]:
        with services.db.sessions() as session:
            return service.list_domains(session, account_id, limit=LISTED, skip=0)[1]
    return page(request, "app_domains.html", status_code=status_code,
                domains=await in_thread(run), error=error, name=name,
                when=format_rfc2822)


@router.get("/app/domains")
async def domains_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _list_page(request, services, viewer.account_id)


@router.post("/app/domains")
async def add_domain(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_domains")
    name = form.get("name")

    def run() -> str:
        domain = service.new_domain(services.vault, viewer.account_id, {"name": name},
                                    services.clock, reserved=operator_names(services.settings))
        with services.db.transaction() as session:
            service.add_domain(session, domain, services)
            audited(session, services, viewer, "web.domain.added", domain.id,
                     domain=domain.name)
        return domain.name

    try:
        added = await in_thread(run)
    except MailhavenError as refused:
        return await _list_page(request, services, viewer.account_id, status_code=400,
                                error=refused.message, name=name)
    return redirect(request, f"/app/domains/{added}",
                    flash=f"Domain {added} added: publish its records, then verify it.")


async def _detail(request: Request, services: Services, account_id: str, name: str, *,
                  status_code: int = 200, error: str | None = None) -> Response:
    hostname = services.settings.hostname

    def run() -> dict[str, Any]:
        with services.db.sessions() as session:
            domain = service.owned_domain(session, account_id, name)
            return {"domain": domain,
                    **service.domain_response(domain, hostname,
                                              kept_for=bodies_kept_for(session, account_id)),
                    "dkim_keys": service.dkim_keys_json(domain),
                    "tracking": tracking.settings_json(domain)}

    try:
        values = await in_thread(run)
    except NotFound:
        return not_found_page(request)
    return page(request, "app_domain.html", status_code=status_code, error=error,
                click_choices=CLICK_CHOICES, when=format_rfc2822, **values)


@router.get("/app/domains/{name}")
async def domain_page(name: str, request: Request, services: ServicesDep,
                      viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _detail(request, services, viewer.account_id, name)


@router.post("/app/domains/{name}/verify")
async def verify_now(name: str, request: Request, services: ServicesDep,
                     viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_domains")
    account_id = viewer.account_id

    def load() -> Any:
        with services.db.sessions() as session:
            return verify.to_check(session, account_id, name, services)

    def store(status: dict[str, dict[str, Any]]) -> str:
        with services.db.transaction() as session:
            domain = verify.store_check(session, account_id, name, status,
                                        services.clock.now(), services)
            audited(session, services, viewer, "web.domain.verified", domain.id,
                     domain=domain.name, state=domain.state)
            return domain.state

    try:
        domain = await in_thread(load)
        status = await verify.check(domain, services.settings.hostname,
                                    make_resolver(services.settings.dns_nameserver))
        state = await in_thread(lambda: store(status))
    except NotFound:
        return not_found_page(request)
    except MailhavenError as refused:
        return await _detail(request, services, account_id, name, status_code=400,
                             error=refused.message)
    outcome = ("Verified: the domain is active." if state == "active" else
               "Checked: some records are not published yet. The domain stays unverified.")
    return redirect(request, f"/app/domains/{name}", flash=outcome)


@router.post("/app/domains/{name}/dkim")
async def rotate_dkim(name: str, request: Request, services: ServicesDep,
                      viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_domains")

    def run() -> str:
        pair, selector = service.rotation_key({"dkim_algorithm": form.get("algorithm"),
                                               "dkim_selector": form.get("selector")})
        with services.db.transaction() as session:
            domain = service.rotate_dkim(session, services.vault, viewer.account_id, name,
                                         pair, selector, services.clock)
            audited(session, services, viewer, "web.domain.dkim_rotated", domain.id,
                     domain=domain.name, algorithm=pair.algorithm)
        return pair.algorithm

    try:
        await in_thread(run)
    except NotFound:
        return not_found_page(request)
    except MailhavenError as refused:
        return await _detail(request, services, viewer.account_id, name, status_code=400,
                             error=refused.message)
    return redirect(request, f"/app/domains/{name}",
                    flash="New DKIM key made: publish its record; it signs once verified.")


@router.post("/app/domains/{name}/tracking")
async def change_tracking(name: str, request: Request, services: ServicesDep,
                          viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_domains")
    wanted = {"open": {"active": "yes" if form.get("open") else "no"},
              "click": {"active": form.get("click") or "no"},
              "unsubscribe": {"active": "yes" if form.get("unsubscribe") else "no"}}

    def run() -> None:
        with services.db.transaction() as session:
            domain = service.owned_domain(session, viewer.account_id, name)
            for kind, fields in wanted.items():
                tracking.update_settings(domain, kind, fields)
            audited(session, services, viewer, "web.domain.tracking_changed", domain.id,
                     domain=domain.name, opens=domain.track_opens, clicks=domain.track_clicks,
                     unsubscribes=domain.track_unsubscribes)

    try:
        await in_thread(run)
    except NotFound:
        return not_found_page(request)
    except MailhavenError as refused:
        return await _detail(request, services, viewer.account_id, name, status_code=400,
                             error=refused.message)
    return redirect(request, f"/app/domains/{name}", flash="Tracking settings saved.")


@router.get("/app/domains/{name}/delete")
async def confirm_delete(name: str, request: Request, services: ServicesDep,
                         viewer: ViewerDep) -> Response:
    require(viewer, "manage_domains")

    def run() -> str:
        with services.db.sessions() as session:
            return service.owned_domain(session, viewer.account_id, name,
                                        with_keys=False).name
    try:
        found = await in_thread(run)
    except NotFound:
        return not_found_page(request)
    return page(request, "app_domain_delete.html", name=found)


@router.post("/app/domains/{name}/delete")
async def delete_domain(name: str, request: Request, services: ServicesDep,
                        viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_domains")

    def run() -> str:
        with services.db.transaction() as session:
            domain = service.owned_domain(session, viewer.account_id, name, with_keys=False)
            if form.get("confirm").strip().lower() != domain.name:
                raise NotConfirmed(domain.name)
            domain_id, domain_name = domain.id, domain.name
            service.delete_domain(session, viewer.account_id, domain_name)
            audited(session, services, viewer, "web.domain.deleted", domain_id,
                     domain=domain_name)
            return domain_name

    try:
        deleted = await in_thread(run)
    except NotFound:
        return not_found_page(request)
    except NotConfirmed as unconfirmed:
        return page(request, "app_domain_delete.html", status_code=400,
                    name=unconfirmed.name, error="Type the domain's name to confirm.")
    return redirect(request, "/app/domains", flash=f"Domain {deleted} deleted.")


class NotConfirmed(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
