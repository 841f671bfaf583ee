"""`/app/team` (the account's users: invite, change a role, remove) and `/invite/{token}`
(an invited user chooses a name and a password)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response

from mailhaven.deps import ServicesDep
from mailhaven.errors import Gone, MailhavenError, NotFound
from mailhaven.http import in_thread
from mailhaven.services import Services
from mailhaven.users import sessions, team
from mailhaven.users.passwords import new_password_hash
from mailhaven.users.service import ROLES, hashing, user_details
from mailhaven.users.tokens import peek_token
from mailhaven.web.core import (
    SESSION_COOKIE,
    ViewerDep,
    not_found_page,
    page,
    posted_form,
    redirect,
    require,
    set_cookie,
    web_router,
)

router = web_router()


def when(epoch: float) -> str:
    """A time as the panel shows it: to the minute, in UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _team_page(request: Request, services: ServicesDep, viewer: ViewerDep, *,
                     status_code: int = 200, error: str | None = None,
                     invited: dict[str, str] | None = None) -> Response:
    def read() -> list[team.Member]:
        with services.db.sessions() as session:
            return team.members(session, services.vault, viewer.account_id)

    return page(request, "app_team.html", status_code=status_code, members=await in_thread(read),
                roles=ROLES, role_names=team.ROLE_NAMES, error=error, invited=invited or {},
                when=when)


@router.get("/app/team")
async def team_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    return await _team_page(request, services, viewer)


@router.post("/app/team/invite")
async def invite(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_team")
    email, role, name = form.get("email"), form.get("role"), form.get("name")

    def run() -> None:
        with services.db.transaction() as session:
            team.invite(session, services, account_id=viewer.account_id, by=viewer.user_id,
                        email=email, role=role, name=name,
                        base_url=services.settings.api_url)

    try:
        await in_thread(run)
    except MailhavenError as refused:
        return await _team_page(request, services, viewer, status_code=refused.status,
                                error=refused.message,
                                invited={"email": email, "role": role, "name": name})
    return redirect(request, "/app/team", flash="Invitation sent.")


@router.post("/app/team/{user_id}/role")
async def change_role(request: Request, user_id: str, services: ServicesDep,
                      viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_team")

    def run() -> None:
        with services.db.transaction() as session:
            revoked = team.change_role(
                session, services.vault, account_id=viewer.account_id, by=viewer.user_id,
                user_id=user_id, role=form.get("role"), now=services.clock.now()).revoked
        _forget(services, revoked)

    return await _changed(request, services, viewer, run, "Role changed.")


@router.post("/app/team/{user_id}/resend")
async def resend(request: Request, user_id: str, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_team")

    def run() -> None:
        with services.db.transaction() as session:
            team.resend_invitation(session, services, account_id=viewer.account_id,
                                   by=viewer.user_id, user_id=user_id,
                                   base_url=services.settings.api_url)

    return await _changed(request, services, viewer, run, "Invitation sent again.")


@router.post("/app/team/{user_id}/remove")
async def remove(request: Request, user_id: str, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    await posted_form(request)
    require(viewer, "manage_team")

    def run() -> None:
        with services.db.transaction() as session:
            revoked = team.remove(session, services.vault, account_id=viewer.account_id,
                                  by=viewer.user_id, user_id=user_id, now=services.clock.now(),
                                  data_dir=services.settings.data_dir)
        _forget(services, revoked)

    return await _changed(request, services, viewer, run, "User removed.")


def _forget(services: Services, digests: list[str]) -> None:
    """Revoked keys stop working in this process at once (others' caches expire)."""
    for digest in digests:
        services.key_cache.forget(digest)


async def _changed(request: Request, services: ServicesDep, viewer: ViewerDep,
                   run: Callable[[], None], done: str) -> Response:
    try:
        await in_thread(run)
    except NotFound:
        return not_found_page(request)
    except MailhavenError as refused:
        return await _team_page(request, services, viewer, status_code=refused.status,
                                error=refused.message)
    target = "/app/team" if await _still_here(services, viewer) else "/login"
    return redirect(request, target, flash=done)


async def _still_here(services: ServicesDep, viewer: ViewerDep) -> bool:
    """Whether the viewer can still see the team (they may have removed themselves)."""
    def read() -> bool:
        with services.db.sessions() as session:
            try:
                return team.member(session, viewer.account_id, viewer.user_id) is not None
            except NotFound:
                return False
    return await in_thread(read)


# -- the invited user ----------------------------------------------------------------------

def _invited_address(services: Services, token: str) -> str:
    with services.db.sessions() as session:
        user = peek_token(session, token, "invite", now=services.clock.now())
        return (user_details(session, services.vault, user) or ("", ""))[1]


@router.get("/invite/{token}")
async def invitation(request: Request, token: str, services: ServicesDep) -> Response:
    try:
        email = await in_thread(lambda: _invited_address(services, token))
    except MailhavenError as refused:
        return page(request, "auth_invite.html", status_code=refused.status,
                    gone=refused.message)
    return page(request, "auth_invite.html", token=token, email=email)


@router.post("/invite/{token}")
async def accept(request: Request, token: str, services: ServicesDep) -> Response:
    form = await posted_form(request)
    name, password = form.get("name"), form.get("password")
    now = services.clock.now()

    def start() -> str:
        with services.db.transaction() as session:
            user = team.accept_invitation(session, services.vault, token, name=name,
                                          password_hash=hashed, now=now)
            return sessions.start_session(session, user, now=now)

    try:
        email = await in_thread(lambda: _invited_address(services, token))
        hashed = await hashing(lambda: new_password_hash(password, email))  # sign-up's rules
        cookie = await in_thread(start)
    except (NotFound, Gone) as refused:
        return page(request, "auth_invite.html", status_code=refused.status,
                    gone=refused.message)
    except MailhavenError as refused:
        return page(request, "auth_invite.html", status_code=refused.status, token=token,
                    error=refused.message, name=name)
    response = redirect(request, "/app", flash="Welcome to the team.")
    set_cookie(request, response, SESSION_COOKIE, cookie)
    return response
