"""`/app/smtp`: each domain's SMTP logins (created with a password given or generated and
shown once, changed, deleted) and where to submit mail. The service of
`/v3/domains/{d}/credentials`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailhaven.clock import format_rfc2822
from mailhaven.credentials import service
from mailhaven.deps import ServicesDep
from mailhaven.domains.service import list_domains, owned_domain
from mailhaven.errors import MailhavenError, NotFound
from mailhaven.http import in_thread
from mailhaven.services import Services
from mailhaven.web.core import (
    Viewer,
    ViewerDep,
    actor,
    not_found_page,
    page,
    posted_form,
    redirect,
    require,
    web_router,
)

router = web_router()
LISTED = 1000


async def _smtp_page(request: Request, services: Services, viewer: Viewer, *,
                     status_code: int = 200, **values: Any) -> Response:
    def run() -> list[tuple[Any, list[service.Credential]]]:
        with services.db.sessions() as session:
            domains = list_domains(session, viewer.account_id, limit=LISTED, skip=0)[1]
            return [(d, service.list_page(session, services.vault, d, limit=LISTED)[1])
                    for d in domains]
    settings = services.settings
    return page(request, "app_smtp.html", status_code=status_code, when=format_rfc2822,
                domains=await in_thread(run), host=settings.hostname,
                port=settings.smtp_port, smtps_port=settings.smtps_port, **values)


@router.get("/app/smtp")
async def smtp_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _smtp_page(request, services, viewer)


async def _change(request: Request, services: Services, viewer: Viewer,
                  work: Callable[[], tuple[str, str] | str]) -> Response:
    """Run `work()` (which returns what to show once, or a flash) and answer its page."""
    try:
        shown = await in_thread(work)
    except NotFound as missing:
        if missing.message == service.NOT_FOUND:
            return await _smtp_page(request, services, viewer, status_code=404,
                                    error=missing.message)
        return not_found_page(request)
    except MailhavenError as refused:
        return await _smtp_page(request, services, viewer, status_code=400,
                                error=refused.message)
    if isinstance(shown, tuple):  # (login, password): shown on this page only, once
        return await _smtp_page(request, services, viewer, new_login=shown[0],
                                new_password=shown[1])
    return redirect(request, "/app/smtp", flash=shown)


@router.post("/app/smtp/{name}/credentials")
async def create_credential(name: str, request: Request, services: ServicesDep,
                            viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    login, given = form.get("login"), form.get("password")

    def run() -> tuple[str, str] | str:
        with services.db.sessions() as session:  # 404 and 400 before any hashing
            full = service.full_login(owned_domain(session, viewer.account_id, name).name,
                                      login)
        password = given or service.generate_password()
        hashed = service.hash_password(password)
        with services.db.transaction() as session:
            service.create(session, services.vault,
                           owned_domain(session, viewer.account_id, name), full, hashed,
                           services.clock, actor=actor(viewer))
        return f"SMTP login {full} created." if given else (full, password)

    return await _change(request, services, viewer, run)


@router.post("/app/smtp/{name}/password")
async def change_password(name: str, request: Request, services: ServicesDep,
                          viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    login, given = form.get("login"), form.get("password")

    def run() -> tuple[str, str] | str:
        password = given or service.generate_password()
        hashed = service.hash_password(password)
        with services.db.transaction() as session:
            changed = service.change_password(
                session, services.vault, owned_domain(session, viewer.account_id, name),
                login, hashed, services.clock, actor=actor(viewer))
        return (f"Password of {changed.login} changed." if given
                else (changed.login, password))

    return await _change(request, services, viewer, run)


@router.post("/app/smtp/{name}/delete")
async def delete_credential(name: str, request: Request, services: ServicesDep,
                            viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")

    def run() -> str:
        with services.db.transaction() as session:
            deleted = service.delete(session, services.vault,
                                     owned_domain(session, viewer.account_id, name),
                                     form.get("login"), services.clock, actor=actor(viewer))
        return f"SMTP login {deleted} deleted."

    return await _change(request, services, viewer, run)
