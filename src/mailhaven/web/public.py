"""The public site: the home page, the privacy notice and its versions, the recipients'
privacy center, the contact form, and the visitor's cookie choice (with the one analytic
count it allows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from prometheus_client import Counter
from starlette.routing import Match

from mailhaven.controls.service import PURPOSES
from mailhaven.deps import ServicesDep
from mailhaven.errors import MailhavenError
from mailhaven.http import in_thread, read_body
from mailhaven.notices import subprocessors as register
from mailhaven.privacy import intake
from mailhaven.privacy import requests as reqs
from mailhaven.services import Services
from mailhaven.site import consent
from mailhaven.site.contact import CONSENT_TEXTS, CONSENT_VERSION, TOPICS, submit_contact
from mailhaven.web import notice
from mailhaven.web.core import (
    CONSENT_COOKIE,
    PageRefused,
    not_found_page,
    page,
    posted_form,
    redirect,
    safe_next,
    set_cookie,
    web_router,
)

router = web_router()
YEAR = 365 * 86400
CHOICES = {"essential": False, "all": True}  # the banner's buttons: analytics granted?
CHOICE_SAVED = {"essential": "Saved: essential cookies only, nothing analytic.",
                "all": "Saved: essential cookies, and counting page visits."}
RIGHT_NAMES = {"access": "See the data held about me (access)",
               "portability": "Get my data in a portable format (portability)",
               "rectification": "Correct my address (rectification)",
               "erasure": "Erase my data (erasure)",
               "restriction": "Stop using my data, but keep it (restriction)",
               "objection": "Object to the use of my data (objection)",
               "withdraw-consent": "Withdraw my consent (tracking, marketing, analytics)"}
VISITS = Counter("mailhaven_site_visits_total",
                 "Page visits counted with the visitor's consent (no cookie, no person)",
                 ["page"])
MAX_BEACON_BYTES = 2048


# -- the home page ---------------------------------------------------------------------------

@router.get("/")
async def home(request: Request) -> Response:
    return page(request, "site_home.html")


# -- the privacy notice ----------------------------------------------------------------------

@router.get("/privacy")
async def privacy_notice(request: Request, services: ServicesDep) -> Response:
    return await _notice(request, services, None)


@router.get("/privacy/versions/{version}")
async def privacy_notice_version(version: str, request: Request,
                                 services: ServicesDep) -> Response:
    return await _notice(request, services, version)


async def _notice(request: Request, services: Services, version: str | None) -> Response:
    """A version (None: the one in force): a stored one's text and the register of
    sub-processors as it stood on its effective date, with what changed in both from the
    version before it; or a built-in template."""
    def read() -> dict[str, Any] | None:
        listed, in_force = notice.listing(services)
        chosen = version or in_force
        shown = next((v for v in listed if v.version == chosen), None)
        if shown is None:
            return None
        found: dict[str, Any] = {"document": None, "document_html": None, "changes": None,
                                 "previous": None, "register": None, "register_changes": [],
                                 "summary_contradicted": False}
        if shown.stored is not None:
            found["document_html"] = notice.render_text(shown.stored.text)
            found["register"] = notice.registers(services, shown.stored.effective_at)[0]
            before = listed[:listed.index(shown)]
            previous = next((v for v in reversed(before) if v.stored is not None), None)
            if previous is not None and previous.stored is not None:
                found["previous"] = previous.version
                (found["changes"], found["register_changes"],
                 found["summary_contradicted"]) = notice.changes_between(
                    services, previous.stored, shown.stored)
        else:
            found["document"] = notice.template(chosen)
        return {**found, "version": chosen, "in_force": in_force, "versions": listed,
                "shown": shown, "record": notice.record(services)}

    found = await in_thread(read)
    if found is None:
        return not_found_page(request)
    return page(request, "site_privacy.html", **found,
                contact_days=services.settings.contact_retention_days)


@router.get("/privacy/subprocessors")
async def subprocessors(request: Request, services: ServicesDep) -> Response:
    def read() -> list[dict[str, Any]]:
        now = services.clock.now()
        with services.main_db.sessions() as session:
            return [register.as_json(s, now) for s in register.listed(session, now)]

    relay = services.settings.relayhost  # mail leaves through it: it belongs in the register
    return page(request, "site_subprocessors.html", subprocessors=await in_thread(read),
                relayhost=relay[0] if relay else None)


# -- the recipients' privacy center ----------------------------------------------------------

@router.get("/privacy-center")
async def privacy_center(request: Request) -> Response:
    return _center(request)


@router.post("/privacy-center")
async def privacy_center_ask(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    fields = {name: form.get(name).strip() for name in
              ("type", "email", "domain", "new_email", "purpose")}
    fields = {k: v for k, v in fields.items() if v}
    client = request.client.host if request.client else None
    try:
        asked = intake.asked(fields)
        who = intake.recipient(fields)
        await in_thread(lambda: intake.file_for_recipient(services, asked, who,
                                                          client=client))
    except MailhavenError as refused:
        return _center(request, status_code=refused.status, error=refused.message,
                       given=fields)
    return page(request, "site_privacy_center_sent.html")


def _center(request: Request, *, status_code: int = 200, error: str | None = None,
            given: dict[str, str] | None = None) -> Response:
    return page(request, "site_privacy_center.html", status_code=status_code, error=error,
                given=given or {}, rights=[(r, RIGHT_NAMES.get(r, r)) for r in reqs.RIGHTS],
                purposes=PURPOSES)


# -- the contact form ------------------------------------------------------------------------

@router.get("/contact")
async def contact(request: Request) -> Response:
    return _contact(request)


@router.post("/contact")
async def contact_send(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    given = {name: form.get(name) for name in
             ("name", "email", "company", "topic", "message", "consent_text_version")}
    client = request.client.host if request.client else None
    if form.get("consent") != "yes":
        return _contact(request, status_code=400, given=given,
                        error="consent: tick the box to agree, so that we may keep and "
                              "answer your message")

    def submit() -> None:
        with services.db.transaction() as session:
            submit_contact(session, services, name=given["name"], email=given["email"],
                           company=given["company"], topic=given["topic"],
                           message=given["message"],
                           consent_text_version=given["consent_text_version"], client=client)

    try:
        await in_thread(submit)
    except MailhavenError as refused:
        return _contact(request, status_code=refused.status, error=refused.message,
                        given=given)
    return redirect(request, "/contact/thanks")


@router.get("/contact/thanks")
async def contact_thanks(request: Request, services: ServicesDep) -> Response:
    return page(request, "site_contact_thanks.html",
                contact_days=services.settings.contact_retention_days)


def _contact(request: Request, *, status_code: int = 200, error: str | None = None,
             given: dict[str, str] | None = None) -> Response:
    return page(request, "site_contact.html", status_code=status_code, error=error,
                given=given or {}, topics=TOPICS, consent_version=CONSENT_VERSION,
                consent_text=CONSENT_TEXTS[CONSENT_VERSION])


# -- cookies ---------------------------------------------------------------------------------

@router.get("/cookies")
async def cookie_settings(request: Request, services: ServicesDep) -> Response:
    visitor = request.cookies.get(consent.VISITOR_COOKIE, "")

    def history() -> list[dict[str, Any]]:
        if not consent.is_visitor_id(visitor):
            return []
        with services.db.sessions() as session:
            return [{**c, "when": when(c["at"])}
                    for c in consent.cookie_choices(session, services, visitor)]

    return page(request, "site_cookies.html", history=await in_thread(history))


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@router.post("/cookies")
async def cookie_choice(request: Request, services: ServicesDep) -> Response:
    form = await posted_form(request)
    choice = form.get("choice")
    if choice not in CHOICES:
        raise PageRefused(400, "Choose “Essential only” or “Accept analytics”.")
    visitor = request.cookies.get(consent.VISITOR_COOKIE, "")
    if not consent.is_visitor_id(visitor):
        visitor = consent.new_visitor_id()

    def record() -> None:
        with services.db.transaction() as session:
            consent.record_cookie_choice(session, services, visitor_id=visitor,
                                         analytics=CHOICES[choice])

    await in_thread(record)
    response = redirect(request, safe_next(form.get("next"), "/"), flash=CHOICE_SAVED[choice])
    set_cookie(request, response, CONSENT_COOKIE, choice, max_age=YEAR)
    set_cookie(request, response, consent.VISITOR_COOKIE, visitor, max_age=YEAR)
    return response


@router.post("/visits")
async def visit(request: Request) -> Response:
    """The analytics beacon (static/visits.js, on pages only once the visitor chose "all"):
    one count for the page's route, never its path (paths can carry addresses), and
    nothing about who visited. Without that consent nothing is counted."""
    body = await read_body(request, MAX_BEACON_BYTES)  # unauthenticated: never read whole
    if request.cookies.get(CONSENT_COOKIE) == "all":
        VISITS.labels(page=route_template(body.decode(errors="replace"))).inc()
    return Response(status_code=204)


def route_template(path: str) -> str:
    """The page route a path belongs to ("/privacy/versions/{version}"), or "other"."""
    from mailhaven.web.router import PAGES  # (imports this module)

    if not path.startswith("/"):
        return "other"
    scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
    for module in PAGES:
        for route in module.router.routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] is Match.FULL:
                return route.path
    return "other"
