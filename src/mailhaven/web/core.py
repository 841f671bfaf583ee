"""What every page shares: rendering, the signed-in user, CSRF, flashes, security headers.

Pages are server-rendered and work without JavaScript; they call the same service functions
as the API. Every route of a page module is made by `web_router()`, whose route class adds
the security headers to whatever the page answers and turns `PageRefused` into an error
page, so no page can forget either."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.audit import service as audit
from mailhaven.deps import ServicesDep
from mailhaven.http import in_thread, read_form
from mailhaven.notices import service as notices
from mailhaven.notices.models import NoticeObjection
from mailhaven.services import Services
from mailhaven.users.sessions import Viewer, open_session, touch_session

SESSION_COOKIE, CSRF_COOKIE, CONSENT_COOKIE, FLASH_COOKIE = (
    "mh_session", "mh_csrf", "mh_consent", "mh_flash")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
MAX_FORM_BYTES = 4 * 1024 * 1024  # a CSV import is the largest form a page takes
SESSION_TOUCH_SECONDS = 60

T = TypeVar("T")
templates = Environment(loader=PackageLoader("mailhaven", "web/templates"),
                        autoescape=select_autoescape(), trim_blocks=True, lstrip_blocks=True)

__all__ = ["Form", "PageRefused", "Viewer", "ViewerDep", "not_found_page", "page",
           "posted_form", "redirect", "require", "set_cookie", "web_router"]


class PageRefused(Exception):
    """Raised anywhere in a page's handling: answered with an error page (or, for a
    visitor who is not signed in, a redirect to the login page)."""

    def __init__(self, status: int, message: str, *, location: str | None = None,
                 title: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.location = status, message, location
        # a form sent incomplete is no refusal: its page says what to fix, not "Not allowed"
        self.title = title or {404: "Not found", 400: "Please check the form"}.get(
            status, "Not allowed")


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                # Who is signed in, before the page runs: the header shows it, and every
                # form of the page (the cookie banner's too) carries the session's token.
                services = request.app.state.services
                viewer = await current_viewer(request, services)
                if viewer is not None:  # the request log names the account, as the API's does
                    request.state.account_id = viewer.account_id
                if viewer is not None and request.url.path.startswith("/app"):
                    request.state.notice_banner = await in_thread(
                        lambda: notice_banner(services, viewer.account_id))
                response = await handler(request)
            except PageRefused as refused:
                response = (RedirectResponse(refused.location, status_code=303)
                            if refused.location else _error_page(request, refused))
            response.headers.update(SECURITY_HEADERS)
            if request.url.path.startswith("/app") or "set-cookie" in response.headers:
                response.headers["Cache-Control"] = "no-store"
            return response

        return handle


def notice_banner(services: Services, account_id: str) -> list[dict[str, Any]]:
    """The significant amendments still to come (every panel page announces them), and
    whether this account objected to each."""
    now = services.clock.now()
    with services.main_db.sessions() as session:
        pending = notices.pending_significant(session, now)
    if not pending:
        return []
    with services.db.sessions() as session:
        objected = set(session.scalars(select(NoticeObjection.version).where(
            NoticeObjection.account_id == account_id, NoticeObjection.withdrawn_at.is_(None),
            NoticeObjection.carried_out_at.is_(None))))
    return [{"version": n.version, "summary": n.summary,
             "effective": notices.day(n.effective_at), "objected": n.version in objected}
            for n in pending]


def web_router() -> APIRouter:
    """The router of a page module: no OpenAPI entry, headers and error pages added."""
    return APIRouter(include_in_schema=False, route_class=WebRoute)


# -- the signed-in user ----------------------------------------------------------------------

async def current_viewer(request: Request, services: Services) -> Viewer | None:
    """The user signed in on this request (cached on it), or None."""
    if hasattr(request.state, "viewer"):
        known: Viewer | None = request.state.viewer
        return known
    token = request.cookies.get(SESSION_COOKIE, "")
    viewer = None
    if token:
        now = services.clock.now()

        def look_up() -> Viewer | None:
            with services.db.sessions() as session:
                return open_session(session, services.vault, token, now=now)

        viewer = await in_thread(look_up)
        if viewer is not None and now - viewer.seen_at >= SESSION_TOUCH_SECONDS:
            def touch() -> None:
                with services.db.transaction() as session:
                    touch_session(session, viewer.session_id, now=now)
            await in_thread(touch)
    request.state.viewer = viewer
    return viewer


async def signed_in(request: Request, services: ServicesDep) -> Viewer:
    viewer = await current_viewer(request, services)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise PageRefused(303, "Please log in", location=f"/login?next={quote(target)}")
    return viewer


ViewerDep = Annotated[Viewer, Depends(signed_in)]


def require(viewer: Viewer, permission: str) -> None:
    if not viewer.may(permission):
        raise PageRefused(403, "Your role does not allow this. Ask an Admin of your account.")


# -- the database and the audit log ---------------------------------------------------------

async def in_db(services: Services, work: Callable[[Session], T], *, write: bool = False) -> T:
    """`work` in a read session, or in one write transaction, on a database thread."""
    def go() -> T:
        with services.db.transaction() if write else services.db.sessions() as session:
            return work(session)
    return await in_thread(go)


def actor(viewer: Viewer) -> str:
    """Who did it, as the audit log names a panel user."""
    return f"user:{viewer.user_id}"


def audited(session: Session, services: Services, viewer: Viewer, action: str,
            target: str | None = None, **details: Any) -> None:
    """The user's change in the audit log, in its transaction (nothing personal in
    `details`: an address belongs nowhere in the clear)."""
    audit.append(session, services.vault, actor=actor(viewer), action=action, target=target,
                 details=details, now=services.clock.now())


# -- forms and CSRF --------------------------------------------------------------------------

@dataclass
class Form:
    fields: list[tuple[str, str]]
    files: list[tuple[str, str, bytes]] = field(default_factory=list)

    def get(self, name: str) -> str:
        return next((v for k, v in self.fields if k == name), "")

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


def csrf_token(request: Request) -> str:
    """The token every form of this page carries: the session's when signed in, else the
    visitor's `mh_csrf` cookie (made here, set on the response by `page`)."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    if viewer is not None:
        return viewer.csrf
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


async def posted_form(request: Request) -> Form:
    """The form a page posted, after its CSRF token is checked (403 otherwise)."""
    services: Services = request.app.state.services
    viewer = await current_viewer(request, services)
    fields, files = await read_form(request, MAX_FORM_BYTES)
    given = next((v for k, v in fields if k == "csrf_token"), "")
    expected = viewer.csrf if viewer is not None else request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PageRefused(403, "This form has expired. Go back, reload the page and try again.")
    return Form([(k, v) for k, v in fields if k != "csrf_token"],
                [(name, a.filename, a.data) for name, a in files])


# -- responses -------------------------------------------------------------------------------

def set_cookie(request: Request, response: Response, name: str, value: str, *,
               max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Lax, Secure when the page came over TLS."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")


def page(request: Request, template: str, *, status_code: int = 200,
         **values: Any) -> HTMLResponse:
    flash = request.cookies.get(FLASH_COOKIE)
    body = templates.get_template(template).render(
        viewer=getattr(request.state, "viewer", None), csrf_token=csrf_token(request),
        path=request.url.path, consent=request.cookies.get(CONSENT_COOKIE),
        flash=unquote(flash)[:300] if flash else None,
        notice_banner=getattr(request.state, "notice_banner", None), **values)
    response = HTMLResponse(body, status_code=status_code)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        set_cookie(request, response, CSRF_COOKIE, new_csrf)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, location: str, *, flash: str | None = None) -> RedirectResponse:
    """303 to `location` (a path of ours), with a message shown once on the next page."""
    response = RedirectResponse(safe_next(location), status_code=303)
    if flash:
        set_cookie(request, response, FLASH_COOKIE, quote(flash), max_age=60)
    return response


def safe_next(location: str | None, default: str = "/app") -> str:
    """A path on this site only: `next=` must not send anyone elsewhere."""
    if not location or not location.startswith("/") or location.startswith("//") \
            or "\\" in location:
        return default
    return location


def not_found_page(request: Request) -> HTMLResponse:
    return _error_page(request, PageRefused(404, "There is nothing here."))


def _error_page(request: Request, refused: PageRefused) -> HTMLResponse:
    return page(request, "error.html", status_code=refused.status, status=refused.status,
                message=refused.message, title=refused.title)
