"""`/app/keys`: the account's API keys; a new key shown once, on the page that made it."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailhaven.accounts import service
from mailhaven.clock import format_rfc2822
from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, MailhavenError, NotFound
from mailhaven.http import in_thread
from mailhaven.services import Services
from mailhaven.users.service import account_users, user_details
from mailhaven.vault.recognise import kept_clear
from mailhaven.web.core import (
    Viewer,
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
MAX_DESCRIPTION = 200
ROLE_NOT_GRANTABLE = "You can give a key your own role or a lesser one."


async def _keys_page(request: Request, services: Services, viewer: Viewer, *,
                     status_code: int = 200, **values: Any) -> Response:
    def run() -> dict[str, Any]:
        with services.db.sessions() as session:
            keys = service.account_keys(session, viewer.account_id)
            makers = {u.id: user_details(session, services.vault, u)
                      for u in account_users(session, viewer.account_id)}
        return {"keys": keys, "makers": {i: d[0] for i, d in makers.items() if d}}
    return page(request, "app_keys.html", status_code=status_code, when=format_rfc2822,
                roles=service.grantable(viewer.role), **await in_thread(run), **values)


@router.get("/app/keys")
async def keys_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "manage_keys")
    return await _keys_page(request, services, viewer)


@router.post("/app/keys")
async def create_key(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_keys")
    description, role = form.get("description").strip(), form.get("role")

    def run() -> str:
        if role not in service.grantable(viewer.role):
            raise BadRequest(ROLE_NOT_GRANTABLE)
        if len(description) > MAX_DESCRIPTION:
            raise BadRequest(f"A description is at most {MAX_DESCRIPTION} characters")
        kept_clear(description, "A key's description")
        with services.db.transaction() as session:
            api_key = service.issue_key(session, viewer.account_id, description=description,
                                        role=role, created_by=viewer.user_id,
                                        clock=services.clock)
            audited(session, services, viewer, "web.key.created",
                    f"account:{viewer.account_id}", role=role, hint=api_key[-4:])
        return api_key

    try:
        api_key = await in_thread(run)
    except MailhavenError as refused:
        return await _keys_page(request, services, viewer, status_code=400,
                                error=refused.message, description=description)
    # Shown on this page only: never in a redirect's URL or a flash cookie.
    return await _keys_page(request, services, viewer, new_key=api_key,
                            new_role=role)


@router.post("/app/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, services: ServicesDep,
                     viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_keys")

    def run() -> str:
        with services.db.transaction() as session:
            key = service.revoke_key(session, viewer.account_id, key_id, clock=services.clock)
            if key.role not in service.grantable(viewer.role):
                raise BadRequest(ROLE_NOT_GRANTABLE.replace("give a key", "revoke keys of"))
            audited(session, services, viewer, "web.key.revoked",
                    f"account:{viewer.account_id}", role=key.role, hint=key.hint)
            return key.digest

    try:
        digest = await in_thread(run)
    except NotFound:
        return not_found_page(request)
    except MailhavenError as refused:
        return await _keys_page(request, services, viewer, status_code=400,
                                error=refused.message)
    services.key_cache.forget(digest)  # this process stops taking it at once
    return redirect(request, "/app/keys", flash="Key revoked: it no longer works.")
