"""`/app/settings/2fa`: the second factor — set up (secret, otpauth URI, QR code, then a
code to confirm), ten recovery codes shown once, turned off with the password or a code."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, Conflict, NotFound, TooManyRequests
from mailhaven.http import client_network, in_thread
from mailhaven.services import Services
from mailhaven.users import twofactor
from mailhaven.web.core import (
    Viewer,
    ViewerDep,
    not_found_page,
    page,
    posted_form,
    redirect,
    web_router,
)

router = web_router()
PATH = "/app/settings/2fa"


@router.get(PATH)
async def two_factor(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    return await _state_page(request, services, viewer)


@router.post(f"{PATH}/start")
async def start(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    network = client_network(request)
    try:
        await in_thread(lambda: twofactor.start(services, viewer.user_id,
                                                password=form.get("password"),
                                                network=network))
    except Conflict as refused:
        return redirect(request, PATH, flash=refused.message)
    except (BadRequest, TooManyRequests) as refused:
        return await _state_page(request, services, viewer, refused.status, refused.message)
    except NotFound:
        return not_found_page(request)
    return redirect(request, PATH)


@router.post(f"{PATH}/confirm")
async def confirm(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    try:
        codes = await in_thread(lambda: twofactor.enable(services, viewer.user_id,
                                                         form.get("code")))
    except BadRequest as refused:
        return await _state_page(request, services, viewer, 400, refused.message)
    except NotFound:
        return not_found_page(request)
    return page(request, "auth_2fa_codes.html", codes=codes)


@router.post(f"{PATH}/disable")
async def disable(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    network = client_network(request)
    try:
        await in_thread(lambda: twofactor.disable(
            services, viewer.user_id, password=form.get("password"), code=form.get("code"),
            network=network))
    except (BadRequest, TooManyRequests) as refused:
        return await _state_page(request, services, viewer, refused.status, refused.message)
    except NotFound:
        return not_found_page(request)
    return redirect(request, PATH, flash="Two-factor authentication is off.")


async def _state_page(request: Request, services: Services, viewer: Viewer,
                      status_code: int = 200, error: str | None = None) -> Response:
    try:
        state = await in_thread(lambda: twofactor.state(services, viewer.user_id,
                                                        viewer.email))
    except NotFound:
        return not_found_page(request)
    return page(request, "auth_2fa.html", status_code=status_code, enabled=state.enabled,
                left=state.recovery_codes_left, pending=state.pending, error=error)
