"""Logging in and out. (Sign-up, e-mail confirmation, the second factor and password reset
build on these.)"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailhaven.audit import service as audit
from mailhaven.deps import ServicesDep
from mailhaven.http import in_thread
from mailhaven.users import sessions
from mailhaven.users.models import User
from mailhaven.users.service import check_password, find_by_email
from mailhaven.web.core import (
    SESSION_COOKIE,
    current_viewer,
    page,
    posted_form,
    redirect,
    safe_next,
    set_cookie,
    web_router,
)

router = web_router()
WRONG_LOGIN = "The e-mail address or the password is not right."
UNCONFIRMED = "Confirm your e-mail address first: follow the link we mailed you."


@router.get("/login")
async def login_page(request: Request, services: ServicesDep) -> Response:
    if await current_viewer(request, services) is not None:
        return redirect(request, safe_next(request.query_params.get("next")))
    return page(request, "auth_login.html", next=safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    email, password, target = form.get("email"), form.get("password"), safe_next(form.get("next"))

    def find() -> User | None:
        with services.db.sessions() as session:
            return find_by_email(session, services.vault, email) if email else None

    user = await in_thread(find)
    if not await in_thread(lambda: check_password(user, password)) or user is None:
        return page(request, "auth_login.html", status_code=400, error=WRONG_LOGIN,
                    next=target, email=email)
    if user.confirmed_at is None:
        return page(request, "auth_login.html", status_code=400, error=UNCONFIRMED,
                    next=target, email=email)
    now = services.clock.now()

    def start() -> str:
        with services.db.transaction() as session:
            found = session.get(User, user.id)
            assert found is not None
            if found.password_hash != user.password_hash:  # check_password upgraded it
                found.password_hash = user.password_hash
            token = sessions.start_session(session, found, now=now)
            audit.append(session, services.vault, actor=f"user:{found.id}",
                         action="web.login", target=f"account:{found.account_id}", now=now)
            return token

    token = await in_thread(start)
    response = redirect(request, target)
    set_cookie(request, response, SESSION_COOKIE, token)
    return response


@router.post("/logout")
async def logout(request: Request, services: ServicesDep) -> Response:
    await posted_form(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    viewer = await current_viewer(request, services)

    def end() -> None:
        with services.db.transaction() as session:
            sessions.end_session(session, token)
            if viewer is not None:
                audit.append(session, services.vault, actor=f"user:{viewer.user_id}",
                             action="web.logout", now=services.clock.now())

    await in_thread(end)
    response = redirect(request, "/login", flash="You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
