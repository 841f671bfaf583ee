"""`/app/routes`: the account's routes for received mail (priority, expression, actions),
created, changed and deleted through the routes service the API calls, with its checks."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mailhaven.deps import ServicesDep
from mailhaven.errors import MailhavenError, NotFound
from mailhaven.routes import service
from mailhaven.web.core import (
    Form,
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

router = web_router()
BASE = "/app/routes"
PAGE_SIZE = 100


def _fields(form: Form) -> list[tuple[str, str]]:
    """The API's form fields from the page's: one `action` per line of the actions box."""
    fields = [(name, form.get(name)) for name in ("priority", "description", "expression")]
    actions = [line.strip() for line in form.get("actions").splitlines() if line.strip()]
    return fields + [("action", action) for action in actions]


def _values(form: Form) -> dict[str, str]:
    return {name: form.get(name) for name in ("priority", "description", "expression",
                                              "actions")}


def _skip(request: Request) -> int:
    try:
        return max(int(request.query_params.get("skip", "0")), 0)
    except ValueError:
        return 0


async def _render_list(request: Request, services: ServicesDep, account_id: str, *,
                       status_code: int = 200, error: str | None = None,
                       values: dict[str, str] | None = None) -> Response:
    skip = _skip(request)
    listed = await in_db(services, lambda session: service.listing(
        session, services.vault, account_id, skip=str(skip), limit=str(PAGE_SIZE)))
    return page(request, "app_routes.html", status_code=status_code, error=error,
                routes=listed["items"], total=listed["total_count"], skip=skip,
                page_size=PAGE_SIZE, values=values or {})


@router.get(BASE)
async def routes(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _render_list(request, services, viewer.account_id)


@router.post(BASE)
async def create(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    fields, now = _fields(form), services.clock.now()

    def work(session: Session) -> None:
        made = service.create(session, services.vault, viewer.account_id, fields, now)
        audited(session, services, viewer, "web.route_created", f"route:{made['route']['id']}")

    try:
        await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render_list(request, services, viewer.account_id, status_code=400,
                                  error=exc.message, values=_values(form))
    return redirect(request, BASE, flash="Route created.")


async def _render_one(request: Request, services: ServicesDep, account_id: str,
                      route_id: str, *, status_code: int = 200, error: str | None = None,
                      values: dict[str, str] | None = None) -> Response:
    def work(session: Session) -> dict[str, Any]:
        try:
            found: dict[str, Any] = service.get(session, services.vault, account_id,
                                                route_id)["route"]
            return found
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None

    route = await in_db(services, work)
    shown = values or {"priority": str(route["priority"]), "description": route["description"],
                       "expression": route["expression"], "actions": "\n".join(route["actions"])}
    return page(request, "app_route.html", status_code=status_code, error=error, route=route,
                values=shown)


@router.get(BASE + "/{route_id}")
async def route(route_id: str, request: Request, services: ServicesDep,
                viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _render_one(request, services, viewer.account_id, route_id)


@router.post(BASE + "/{route_id}")
async def update(route_id: str, request: Request, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_sending")
    fields = _fields(form)  # no action given keeps the actions, as the API's PUT does

    def work(session: Session) -> None:
        try:
            service.get(session, services.vault, viewer.account_id, route_id)
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None
        service.update(session, services.vault, viewer.account_id, route_id, fields)
        audited(session, services, viewer, "web.route_changed", f"route:{route_id}")

    try:
        await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render_one(request, services, viewer.account_id, route_id,
                                 status_code=400, error=exc.message, values=_values(form))
    return redirect(request, f"{BASE}/{route_id}", flash="Route saved.")


@router.post(BASE + "/{route_id}/delete")
async def delete(route_id: str, request: Request, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_sending")

    def work(session: Session) -> None:
        try:
            service.remove(session, services.vault, viewer.account_id, route_id)
        except NotFound:
            raise PageRefused(404, "There is nothing here.") from None
        audited(session, services, viewer, "web.route_deleted", f"route:{route_id}")

    await in_db(services, work, write=True)
    return redirect(request, BASE, flash="Route deleted.")
