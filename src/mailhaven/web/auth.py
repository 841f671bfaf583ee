"""Getting in: sign-up and its confirmation link, login (password, then the second factor
when the user has one), logout, password reset. Throttled per address and per network
(users.throttle); no answer tells whether an address has a user."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, Gone, MailhavenError, NotFound
from mailhaven.http import client_network, in_thread
from mailhaven.services import Services
from mailhaven.users import login, sessions, signup, throttle, tokens
from mailhaven.users.passwords import new_password_hash
from mailhaven.web.core import (
    SESSION_COOKIE,
    audited,
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


# -- login -----------------------------------------------------------------------------------

@router.get("/login")
async def login_page(request: Request, services: ServicesDep) -> Response:
    target = safe_next(request.query_params.get("next"))
    if await current_viewer(request, services) is not None:
        return redirect(request, target)
    token = request.cookies.get(SESSION_COOKIE, "")
    if await in_thread(lambda: login.code_owed(services, token)):
        return page(request, "auth_login_code.html", next=target)
    return page(request, "auth_login.html", next=target)


@router.post("/login")
async def log_in(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    target, network = safe_next(form.get("next")), client_network(request)
    if form.getlist("code"):
        return await _second_step(request, services, form.get("code"), target, network)
    email, password = form.get("email"), form.get("password")
    outcome = await login.password_step(services, email, password, network, run=in_thread)
    if outcome.kind in (login.OK, login.CODE_OWED):
        response = redirect(request, target if outcome.kind == login.OK
                            else f"/login?next={quote(target)}")
        set_cookie(request, response, SESSION_COOKIE, outcome.token)
        return response
    status, error = {
        login.ADDRESS_BLOCKED: (429, throttle.ADDRESS_BLOCKED),
        login.NETWORK_BLOCKED: (429, throttle.NETWORK_BLOCKED),
        login.UNCONFIRMED: (400, UNCONFIRMED),
    }.get(outcome.kind, (400, WRONG_LOGIN))
    return page(request, "auth_login.html", status_code=status, next=target, email=email,
                error=error.format(minutes=outcome.minutes))


async def _second_step(request: Request, services: Services, code: str, target: str,
                       network: str) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    outcome = await in_thread(lambda: login.code_step(services, token, code, network))
    if outcome.kind == login.EXPIRED:
        return redirect(request, f"/login?next={quote(target)}", flash=START_AGAIN)
    if outcome.kind == login.ADDRESS_BLOCKED:
        refused = page(request, "auth_login.html", status_code=429, next=target,
                       error=throttle.ADDRESS_BLOCKED.format(minutes=outcome.minutes))
        refused.delete_cookie(SESSION_COOKIE, path="/")
        return refused
    if outcome.kind == login.WRONG:
        return page(request, "auth_login_code.html", status_code=400, next=target,
                    error=WRONG_CODE)
    response = redirect(request, target)
    set_cookie(request, response, SESSION_COOKIE, outcome.token)
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
                audited(session, services, viewer, "web.logout")

    await in_thread(end)
    response = redirect(request, "/login", flash="You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- sign-up and confirmation ----------------------------------------------------------------

@router.get("/signup")
async def signup_page(request: Request, services: ServicesDep) -> Response:
    if await current_viewer(request, services) is not None:
        return redirect(request, "/app")
    return page(request, "auth_signup.html", regions=_regions(services),
                region=services.region)


def _regions(services: Services) -> list[str]:
    """The regions a sign-up may choose (the dispatcher sends the form to the chosen one's
    app, whose region the account is made in)."""
    platform = getattr(services, "platform", None)  # None: services a test made by hand
    open_here = list(platform.regions) if platform is not None else []
    return open_here if len(open_here) > 1 else []


@router.post("/signup")
async def sign_up(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    name, email, password = form.get("name"), form.get("email"), form.get("password")
    try:
        await signup.register(services, name=name, email=email, password=password,
                              network=client_network(request), run=in_thread)
    except MailhavenError as refused:  # a field, a limit, or mail that can't be sent
        return page(request, "auth_signup.html", status_code=refused.status,
                    error=refused.message, name=name, email=email,
                    regions=_regions(services), region=services.region)
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
    form = await posted_form(request)
    try:
        await in_thread(lambda: signup.confirm_address(services, token, form.get("password")))
    except (NotFound, Gone) as refused:
        return _link_refused(request, refused)
    except BadRequest as refused:
        return page(request, "auth_confirm.html", status_code=400, token=token,
                    error=refused.message)
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
    except MailhavenError as refused:  # an address, a limit, or mail that can't be sent
        return page(request, "auth_reset.html", status_code=refused.status,
                    error=refused.message)
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
