"""Getting in: sign-up and its confirmation link, login (password, then the second factor
when the user has one), logout, password reset. Throttled per address and per network
(users.throttle); no answer tells whether an address has a user."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from mailhaven.audit import service as audit
from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, Gone, NotFound, TooManyRequests
from mailhaven.http import client_network, in_thread
from mailhaven.services import Services
from mailhaven.users import sessions, signup, throttle, tokens, totp
from mailhaven.users.models import User
from mailhaven.users.passwords import new_password_hash
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
WRONG_CODE = "That code is not right. Type the 6 digits your app shows now, or a recovery code."
START_AGAIN = "Your login timed out: please start again."


@dataclass(frozen=True)
class Outcome:
    """How a login step ended: `kind` names it; `token` is a new session's cookie value."""

    kind: str
    token: str = ""
    minutes: int = 0


# -- login -----------------------------------------------------------------------------------

@router.get("/login")
async def login_page(request: Request, services: ServicesDep) -> Response:
    target = safe_next(request.query_params.get("next"))
    if await current_viewer(request, services) is not None:
        return redirect(request, target)
    if await _pending_user(request, services) is not None:
        return page(request, "auth_login_code.html", next=target)
    return page(request, "auth_login.html", next=target)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    target, network = safe_next(form.get("next")), client_network(request)
    if form.getlist("code"):
        return await _second_step(request, services, form.get("code"), target, network)
    email, password = form.get("email"), form.get("password")
    outcome = await _password_step(services, email, password, network)
    if outcome.kind in ("ok", "code"):
        response = redirect(request, target if outcome.kind == "ok"
                            else f"/login?next={quote(target)}")
        set_cookie(request, response, SESSION_COOKIE, outcome.token)
        return response
    status, error = {
        "address_blocked": (429, throttle.ADDRESS_BLOCKED),
        "network_blocked": (429, throttle.NETWORK_BLOCKED),
        "unconfirmed": (400, UNCONFIRMED),
    }.get(outcome.kind, (400, WRONG_LOGIN))
    return page(request, "auth_login.html", status_code=status, next=target, email=email,
                error=error.format(minutes=outcome.minutes))


async def _password_step(services: Services, email: str, password: str,
                         network: str) -> Outcome:
    now, vault = services.clock.now(), services.vault
    attempt = throttle.who(vault, email, network)

    def look_up() -> tuple[throttle.Standing, User | None]:
        with services.db.sessions() as session:
            standing = throttle.standing(session, attempt, now=now)
            found = (find_by_email(session, vault, email)
                     if email and not standing.address_blocked else None)
            return standing, found

    standing, user = await in_thread(look_up)
    if standing.address_blocked:
        return Outcome("address_blocked", minutes=standing.minutes)
    right = await in_thread(lambda: check_password(user, password))

    def settle() -> Outcome:
        with services.db.transaction() as session:
            if not right or user is None:
                throttle.record_failure(session, attempt, now=now)
                audit.append(session, vault, actor="web", action="web.login_failed",
                             target=f"user:{user.id}" if user else None,
                             details={"step": "password"}, now=now)
                return Outcome("network_blocked" if standing.network_blocked else "wrong",
                               minutes=standing.minutes)
            if user.confirmed_at is None:
                return Outcome("unconfirmed")
            found = session.get(User, user.id)
            assert found is not None
            if found.password_hash != user.password_hash:  # check_password upgraded it
                found.password_hash = user.password_hash
            if found.totp_enabled_at is not None:  # the failures are forgiven after the code
                return Outcome("code", sessions.start_session(session, found, now=now,
                                                              verified=False))
            throttle.clear_address(session, found.email_index)
            token = sessions.start_session(session, found, now=now)
            audit.append(session, vault, actor=f"user:{found.id}", action="web.login",
                         target=f"account:{found.account_id}", details={"factors": 1},
                         now=now)
            return Outcome("ok", token)

    return await in_thread(settle)


async def _second_step(request: Request, services: Services, code: str, target: str,
                       network: str) -> Response:
    token, now, vault = request.cookies.get(SESSION_COOKIE, ""), services.clock.now(), \
        services.vault

    def settle() -> Outcome:
        with services.db.transaction() as session:
            row = sessions.find_session(session, token, now=now)
            user = session.get(User, row.user_id, with_for_update=True) \
                if row is not None and not row.verified else None
            if user is None:
                return Outcome("expired")
            attempt = throttle.Who(user.email_index, throttle.network_index(vault, network))
            standing = throttle.standing(session, attempt, now=now)
            if standing.address_blocked:
                sessions.end_session(session, token)
                return Outcome("address_blocked", minutes=standing.minutes)
            how = totp.verify(session, vault, user, code, now=now)
            if how is None:
                throttle.record_failure(session, attempt, now=now)
                audit.append(session, vault, actor="web", action="web.login_failed",
                             target=f"user:{user.id}", details={"step": "code"}, now=now)
                return Outcome("wrong")
            sessions.end_session(session, token)  # a new session: none survives the login
            new = sessions.start_session(session, user, now=now)
            throttle.clear_address(session, user.email_index)
            if how == "recovery":
                audit.append(session, vault, actor=f"user:{user.id}",
                             action="web.recovery_code_used", target=f"user:{user.id}",
                             details={"left": totp.recovery_codes_left(user)}, now=now)
            audit.append(session, vault, actor=f"user:{user.id}", action="web.login",
                         target=f"account:{user.account_id}",
                         details={"factors": 2, "second": how}, now=now)
            return Outcome("ok", new)

    outcome = await in_thread(settle)
    if outcome.kind == "expired":
        return redirect(request, f"/login?next={quote(target)}", flash=START_AGAIN)
    if outcome.kind == "address_blocked":
        refused = page(request, "auth_login.html", status_code=429, next=target,
                       error=throttle.ADDRESS_BLOCKED.format(minutes=outcome.minutes))
        refused.delete_cookie(SESSION_COOKIE, path="/")
        return refused
    if outcome.kind == "wrong":
        return page(request, "auth_login_code.html", status_code=400, next=target,
                    error=WRONG_CODE)
    response = redirect(request, target)
    set_cookie(request, response, SESSION_COOKIE, outcome.token)
    return response


async def _pending_user(request: Request, services: Services) -> str | None:
    """The user whose password was right but whose second factor is still owed, or None."""
    token, now = request.cookies.get(SESSION_COOKIE, ""), services.clock.now()
    if not token:
        return None

    def look_up() -> str | None:
        with services.db.sessions() as session:
            row = sessions.find_session(session, token, now=now)
            return row.user_id if row is not None and not row.verified else None

    return await in_thread(look_up)


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


# -- sign-up and confirmation ----------------------------------------------------------------

@router.get("/signup")
async def signup_page(request: Request, services: ServicesDep) -> Response:
    if await current_viewer(request, services) is not None:
        return redirect(request, "/app")
    return page(request, "auth_signup.html")


@router.post("/signup")
async def sign_up(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    name, email, password = form.get("name"), form.get("email"), form.get("password")
    try:
        name, email = signup.check_signup(name, email)
        hashed = await in_thread(lambda: new_password_hash(password, email))
    except BadRequest as refused:
        return page(request, "auth_signup.html", status_code=400, error=refused.message,
                    name=name, email=email)

    def store() -> None:
        with services.db.transaction() as session:
            signup.sign_up(session, services, name=name, email=email, password_hash=hashed,
                           network=client_network(request))

    try:
        await in_thread(store)
    except TooManyRequests as refused:
        return page(request, "auth_signup.html", status_code=429, error=refused.message,
                    name=name, email=email)
    return page(request, "auth_mail_sent.html", title="Check your mail",
                message="We've mailed you a link to confirm your address. Open it to "
                        "finish signing up; then log in.")


@router.get("/confirm/{token}")
async def confirm_page(request: Request, services: ServicesDep, token: str) -> Response:
    def peek() -> None:
        with services.db.sessions() as session:
            tokens.peek_token(session, token, "confirm", now=services.clock.now())

    try:
        await in_thread(peek)
    except (NotFound, Gone) as refused:
        return _link_refused(request, refused)
    return page(request, "auth_confirm.html", token=token)


@router.post("/confirm/{token}")
async def confirm(request: Request, services: ServicesDep, token: str) -> Response:
    await posted_form(request)

    def use() -> None:
        with services.db.transaction() as session:
            signup.confirm_address(session, services, token)

    try:
        await in_thread(use)
    except (NotFound, Gone) as refused:
        return _link_refused(request, refused)
    return redirect(request, "/login", flash="Your address is confirmed. You can log in now.")


# -- password reset --------------------------------------------------------------------------

@router.get("/reset")
async def reset_page(request: Request) -> Response:
    return page(request, "auth_reset.html")


@router.post("/reset")
async def request_reset(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)

    def ask() -> None:
        with services.db.transaction() as session:
            signup.request_reset(session, services, form.get("email"),
                                 network=client_network(request))

    try:
        await in_thread(ask)
    except TooManyRequests as refused:
        return page(request, "auth_reset.html", status_code=429, error=refused.message)
    return page(request, "auth_mail_sent.html", title="Check your mail",
                message="If a user has this address, we've mailed it a link to choose a new "
                        "password. The link works for an hour.")


@router.get("/reset/{token}")
async def new_password_page(request: Request, services: ServicesDep, token: str) -> Response:
    try:
        await in_thread(lambda: _reset_email(services, token))
    except (NotFound, Gone, BadRequest) as refused:
        return _link_refused(request, refused)
    return page(request, "auth_new_password.html", token=token)


@router.post("/reset/{token}")
async def reset_password(request: Request, services: ServicesDep, token: str) -> Response:
    form = await posted_form(request)
    try:
        email = await in_thread(lambda: _reset_email(services, token))
    except (NotFound, Gone, BadRequest) as refused:
        return _link_refused(request, refused)
    try:
        hashed = await in_thread(lambda: new_password_hash(form.get("password"), email))
    except BadRequest as refused:
        return page(request, "auth_new_password.html", status_code=400, token=token,
                    error=refused.message)

    def use() -> None:
        with services.db.transaction() as session:
            signup.reset_password(session, services, token, hashed)

    try:
        await in_thread(use)
    except (NotFound, Gone) as refused:
        return _link_refused(request, refused)
    response = redirect(request, "/login",
                        flash="Your password is changed; every session was logged out. "
                              "Log in with the new one.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _reset_email(services: Services, token: str) -> str:
    with services.db.sessions() as session:
        return signup.reset_email(session, services, token)


def _link_refused(request: Request, refused: NotFound | Gone | BadRequest) -> Response:
    status = 410 if isinstance(refused, Gone) else 404
    return page(request, "auth_link.html", status_code=status, message=refused.message)
