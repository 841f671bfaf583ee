"""The recipient-facing tracking URLs (no API key: the signed token is the authority) and
the tracking settings API, `GET /v3/domains/{d}/tracking`, `PUT …/tracking/{kind}`."""

from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import owned_domain
from mailhaven.errors import frames
from mailhaven.feedback import engagement
from mailhaven.forms import field_dict
from mailhaven.http import in_thread, read_form
from mailhaven.openapi import YES_NO, Field, form
from mailhaven.privacy import service as privacy
from mailhaven.services import Services
from mailhaven.tracking import links, settings
from mailhaven.tracking.links import Link
from mailhaven.web.core import SECURITY_HEADERS

log = logging.getLogger("mailhaven.tracking")
router = APIRouter(tags=["tracking"])
templates = Environment(loader=PackageLoader("mailhaven", "web/templates"),
                        autoescape=select_autoescape())
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


async def _engage(services: Services, request: Request, link: Link) -> str | None:
    def run() -> str | None:
        with services.db.transaction() as session:
            return engagement.engage(session, services.vault, link,
                                  ip=request.client.host if request.client else "",
                                  user_agent=request.headers.get("user-agent", ""),
                                  clock=services.clock,
                                  consents=privacy.Context.of(services, actor="subject"))

    try:
        return await in_thread(run)
    except Exception as exc:  # the recipient still gets the image, the page or the link
        log.error("recording a %s failed: %s", engagement.EVENTS[link.kind], frames(exc))
        return None


def _link(services: Services, token: str, kind: str) -> Link | None:
    link = links.read(services.vault, token)
    return link if link is not None and link.kind == kind else None


@router.get("/o/{token}", include_in_schema=False)
async def opened(token: str, request: Request, services: ServicesDep) -> Response:
    link = _link(services, token, "o")
    if link is not None:
        await _engage(services, request, link)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/c/{token}", include_in_schema=False)
async def clicked(token: str, request: Request, services: ServicesDep) -> Response:
    link = _link(services, token, "c")
    if link is None:  # never redirect on a token we did not sign
        return _page("invalid", status_code=404)
    await _engage(services, request, link)
    return RedirectResponse(link.data, status_code=302, headers=NO_STORE)


def _page(state: str, *, status_code: int = 200, domain: str = "",
          all_mail: bool = True) -> HTMLResponse:
    body = templates.get_template("unsubscribe.html").render(state=state, domain=domain,
                                                             all_mail=all_mail)
    return HTMLResponse(body, status_code=status_code, headers={**SECURITY_HEADERS, **NO_STORE})


@router.get("/u/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request, services: ServicesDep) -> Response:
    """A confirmation page: link scanners follow GETs, and must not unsubscribe anyone."""
    link = _link(services, token, "u")
    if link is None:
        return _page("invalid", status_code=404)
    return _page("confirm", domain=request.url.hostname or "", all_mail=link.data == "*")


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request, services: ServicesDep) -> Response:
    """The page's button, and RFC 8058 one-click (`List-Unsubscribe=One-Click`) alike."""
    link = _link(services, token, "u")
    if link is None:
        return _page("invalid", status_code=404)
    sender = await _engage(services, request, link)
    if sender is None:
        return _page("invalid", status_code=404)
    return _page("done", domain=sender, all_mail=link.data == "*")


# -- settings API ------------------------------------------------------------------------

@router.get("/v3/domains/{domain_name}/tracking")
async def get_tracking(domain_name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    def run() -> dict:
        with services.db.sessions() as session:
            return settings.settings_json(owned_domain(session, account_id, domain_name))

    return {"tracking": await in_thread(run)}


@router.put("/v3/domains/{domain_name}/tracking/{kind}", openapi_extra=form(
    Field("active", "Turn this kind of tracking on or off (click: htmlonly too); omitted, it "
          "stays as it is", enum=(*YES_NO, "htmlonly")),
    Field("place_at_the_top", "open: put the tracking pixel at the top", "boolean"),
    Field("html_footer", "unsubscribe: the HTML footer with %unsubscribe_url%"),
    Field("text_footer", "unsubscribe: the text footer with %unsubscribe_url%"),
    description="The fields of the kind named in the path; the others are ignored."))
async def put_tracking(domain_name: str, kind: str, request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict:
    fields = field_dict((await read_form(request))[0])

    def run() -> dict:
        with services.db.transaction() as session:
            return settings.update_settings(owned_domain(session, account_id, domain_name),
                                           kind, fields)

    return {"message": "Domain tracking settings have been updated", kind: await in_thread(run)}
