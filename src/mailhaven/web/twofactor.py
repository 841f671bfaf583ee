"""`/app/settings/2fa`: the second factor — set up (secret, otpauth URI, QR code, then a
code to confirm), ten recovery codes shown once, turned off with the password or a code."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mailhaven.audit import service as audit
from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, Conflict
from mailhaven.http import client_network, in_thread
from mailhaven.users import throttle, totp
from mailhaven.users.models import User
from mailhaven.users.service import check_password
from mailhaven.web.core import PageRefused, ViewerDep, page, posted_form, redirect, web_router

router = web_router()
PATH = "/app/settings/2fa"
NOT_YOU = "Neither the password nor the code is right."


def _user(session: Session, user_id: str, *, lock: bool = False) -> User:
    user = session.get(User, user_id, with_for_update=lock)
    if user is None:
        raise PageRefused(404, "There is nothing here.")
    return user


@router.get(PATH)
async def two_factor(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    def look() -> tuple[bool, int, totp.Enrolment | None]:
        with services.db.sessions() as session:
            user = _user(session, viewer.user_id)
            pending = totp.pending_enrolment(session, services.vault, user, viewer.email)
            return user.totp_enabled_at is not None, totp.recovery_codes_left(user), pending

    enabled, left, pending = await in_thread(look)
    return page(request, "auth_2fa.html", enabled=enabled, left=left, pending=pending)


@router.post(f"{PATH}/start")
async def start(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    await posted_form(request)

    def begin() -> None:
        with services.db.transaction() as session:
            totp.start_enrolment(session, services.vault, _user(session, viewer.user_id))

    try:
        await in_thread(begin)
    except Conflict as refused:
        return redirect(request, PATH, flash=refused.message)
    return redirect(request, PATH)


@router.post(f"{PATH}/confirm")
async def confirm(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    now = services.clock.now()

    def enable() -> list[str]:
        with services.db.transaction() as session:
            user = _user(session, viewer.user_id, lock=True)
            codes = totp.confirm_enrolment(session, services.vault, user, form.get("code"),
                                           now=now)
            audit.append(session, services.vault, actor=f"user:{user.id}",
                         action="web.2fa_enabled", target=f"user:{user.id}", now=now)
            return codes

    try:
        codes = await in_thread(enable)
    except BadRequest as refused:
        def again() -> totp.Enrolment | None:
            with services.db.sessions() as session:
                return totp.pending_enrolment(session, services.vault,
                                              _user(session, viewer.user_id), viewer.email)
        return page(request, "auth_2fa.html", status_code=400, enabled=False, left=0,
                    pending=await in_thread(again), error=refused.message)
    return page(request, "auth_2fa_codes.html", codes=codes)


@router.post(f"{PATH}/disable")
async def disable(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    password, code, now = form.get("password"), form.get("code"), services.clock.now()
    network = throttle.network_index(services.vault, client_network(request))

    def load() -> User:
        with services.db.sessions() as session:
            return _user(session, viewer.user_id)

    user = await in_thread(load)
    right_password = bool(password) and await in_thread(lambda: check_password(user, password))

    def turn_off() -> str:
        with services.db.transaction() as session:
            found = _user(session, viewer.user_id, lock=True)
            who = throttle.Who(found.email_index, network)
            if throttle.standing(session, who, now=now).address_blocked:
                return "blocked"
            if not right_password and not (code and totp.verify(session, services.vault,
                                                                found, code, now=now)):
                throttle.record_failure(session, who, now=now)
                return "wrong"
            totp.disable(found)
            audit.append(session, services.vault, actor=f"user:{found.id}",
                         action="web.2fa_disabled", target=f"user:{found.id}", now=now)
            return "off"

    outcome = await in_thread(turn_off)
    if outcome != "off":
        error = NOT_YOU if outcome == "wrong" else throttle.ADDRESS_BLOCKED.format(minutes=15)
        return page(request, "auth_2fa.html", status_code=400 if outcome == "wrong" else 429,
                    enabled=True, left=totp.recovery_codes_left(user), pending=None,
                    error=error)
    return redirect(request, PATH, flash="Two-factor authentication is off.")
