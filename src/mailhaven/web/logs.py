"""`/app/logs`: what happened to my mail — the account's events with the Events API's
filters, a live tail (Server-Sent Events), and each message's page: its timeline, headers,
and its content rendered safely."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from markupsafe import escape

from mailhaven.clock import iso8601, monotonic
from mailhaven.deps import ServicesDep
from mailhaven.domains.service import domain_names
from mailhaven.errors import MailhavenError, NotFound
from mailhaven.events.query import EventQuery, fetch, latest_id, newer, of_message, parse_query
from mailhaven.http import in_thread
from mailhaven.messages.downloads import DOWNLOAD_HEADERS, download_type
from mailhaven.sending.stored import AccountMessage, account_message, stored_attachment, stored_view
from mailhaven.services import Services
from mailhaven.users.sessions import open_session
from mailhaven.web.core import (
    SESSION_COOKIE,
    PageRefused,
    Viewer,
    ViewerDep,
    current_viewer,
    not_found_page,
    page,
    require,
    templates,
    web_router,
)

router = web_router()

PAGE_SIZE = 50
EVENT_CHOICES = ("accepted", "delivered", "failed", "opened", "clicked", "unsubscribed",
                 "complained", "stored", "rejected")
FILTER_FIELDS = ("domain", "recipient", "event", "tag", "message-id", "begin", "end")
POLL_SECONDS = 1.0
STREAM_SECONDS = 120  # then the browser's EventSource reconnects (Last-Event-ID resumes)
KEEPALIVE_SECONDS = 15
RETRY_MS = 2000
MAX_STREAMS = 3  # live tails one user may have open at once (in this process)
SESSION_CHECK_POLLS = 5  # a tail whose session ended (logout, expiry, role) ends this soon
TOO_MANY_STREAMS = (f"You have {MAX_STREAMS} live logs open already: close one (another tab "
                    "or window) and reload this page.")
VIEWS = ("html", "text", "headers", "raw")
STORED_DAYS = 3
# The stored HTML body's own policy: nothing remote, no script, no form, no plugin; framed
# by our page only, and sandboxed even when opened on its own.
MESSAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; "
               "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox")


@dataclass(frozen=True)
class Row:
    """One event as the log shows it."""

    when: str
    event: str
    severity: str
    recipient: str
    subject: str
    detail: str
    tags: str
    storage_key: str


def _row(doc: dict[str, Any]) -> Row:
    status = doc.get("delivery-status") or {}
    detail = ""
    if status:
        detail = " ".join(str(p) for p in (status.get("code"), status.get("enhanced-code"),
                                           status.get("message") or status.get("description"))
                          if p)
    if doc.get("reason") and doc.get("event") == "failed":
        detail = f"{doc['reason']}: {detail}" if detail else str(doc["reason"])
    if doc.get("url"):
        detail = str(doc["url"])
    headers = (doc.get("message") or {}).get("headers") or {}
    return Row(iso8601(float(doc["timestamp"]), timespec="seconds").replace("+00:00", "Z"),
               str(doc.get("event", "")), str(doc.get("severity") or ""),
               str(doc.get("recipient", "")), str(headers.get("subject", "")), detail,
               ", ".join(str(t) for t in doc.get("tags") or []),
               str((doc.get("storage") or {}).get("key", "")))


def _as_epoch(value: str) -> str:
    """A `datetime-local` field (read as UTC) as epoch seconds; anything else as it is
    (the API's own forms: epoch seconds, RFC 2822)."""
    try:
        return str(datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return value


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTER_FIELDS}


def _api_params(given: dict[str, str]) -> dict[str, str]:
    """The form's fields in the Events API's names."""
    params = {"limit": str(PAGE_SIZE)}
    for name in ("recipient", "event", "message-id"):
        if given[name]:
            params[name] = given[name]
    if given["tag"]:
        params["tags"] = given["tag"]
    # Newest first, always: the API's `begin` is then the newer end of the range.
    params["ascending"] = "no"
    if given["end"]:
        params["begin"] = _as_epoch(given["end"])
    if given["begin"]:
        params["end"] = _as_epoch(given["begin"])
    return params


def _domain_id(names: dict[str, str], domain: str) -> str | None:
    """The chosen domain's id, or None for all of them (the only one's id when there is
    one: the same events, read straight off the domain's time index)."""
    if not domain:
        return next(iter(names)) if len(names) == 1 else None
    found = next((i for i, n in names.items() if n == domain), None)
    if found is None:
        raise NotFound(f"No domain {domain} in this account")
    return found


@router.get("/app/logs")
async def logs(request: Request, viewer: ViewerDep, services: ServicesDep) -> Response:
    require(viewer, "logs")
    given = _filters(request)
    token = request.query_params.get("page", "")

    def read() -> dict[str, Any]:
        with services.db.sessions() as session:
            names = domain_names(session, viewer.account_id)
            domain_id = _domain_id(names, given["domain"])
            query = (EventQuery.from_token(token, services.vault, viewer.account_id) if token
                     else parse_query(_api_params(given), services.vault, viewer.account_id))
            found = fetch(session, services.vault, viewer.account_id, domain_id, query)
            return {"names": list(names.values()), "rows": [_row(d) for d in found.items],
                    "older": found.next.token(services.vault)
                    if len(found.items) >= query.limit else None,
                    "newer": found.previous.token(services.vault) if token else None,
                    "after": latest_id(session)}

    kept = {k: v for k, v in given.items() if v}
    try:
        found = await in_thread(read)
    except (MailhavenError, ValueError) as error:  # a bad filter, time or page link
        message = error.message if isinstance(error, MailhavenError) else "Invalid page link"
        return page(request, "app_logs.html", status_code=400, error=message,
                    given=given, choices=EVENT_CHOICES, names=[], rows=[], older=None,
                    newer=None, stream=None, kept=urlencode(kept))
    stream = "/app/logs/stream?" + urlencode({**kept, "after": found["after"]})
    return page(request, "app_logs.html", given=given, choices=EVENT_CHOICES,
                kept=urlencode(kept), stream=stream, error=None, **found)


class _StreamSlot:
    """One of a user's MAX_STREAMS live tails: taken when the stream is answered, given back
    once (when the tail ends, or when a tail never started is collected)."""

    open: Counter[str] = Counter()

    def __init__(self, user_id: str) -> None:
        self.user_id, self.held = user_id, True
        self.open[user_id] += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.open[self.user_id] -= 1
            if self.open[self.user_id] <= 0:
                del self.open[self.user_id]


@router.get("/app/logs/stream")
async def stream(request: Request, viewer: ViewerDep, services: ServicesDep) -> Response:
    """New events as they are recorded, as Server-Sent Events of rendered table rows, with
    the log's filters. A browser's EventSource gets a stream of STREAM_SECONDS; any other
    client one poll, then the end (so a plain GET never hangs)."""
    require(viewer, "logs")
    given = _filters(request)
    live = "text/event-stream" in request.headers.get("accept", "")
    resume = request.headers.get("last-event-id") or request.query_params.get("after", "")

    def start() -> tuple[EventQuery, str | None, int]:
        with services.db.sessions() as session:
            domain_id = _domain_id(domain_names(session, viewer.account_id), given["domain"])
            query = parse_query(_api_params(given), services.vault, viewer.account_id)
            after = int(resume) if resume.isdigit() else latest_id(session)
            return replace(query, limit=100), domain_id, after

    try:
        query, domain_id, after = await in_thread(start)
    except MailhavenError as error:
        return HTMLResponse(str(escape(error.message)), status_code=400)
    if live and _StreamSlot.open[viewer.user_id] >= MAX_STREAMS:
        raise PageRefused(429, TOO_MANY_STREAMS)
    slot = _StreamSlot(viewer.user_id)
    tail = _tail(services, viewer, request.cookies.get(SESSION_COOKIE, ""), query, domain_id,
                 after, slot, live=live)
    weakref.finalize(tail, slot.release)  # a stream the client left before it started
    return StreamingResponse(tail, media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


async def _tail(services: Services, viewer: Viewer, token: str, query: EventQuery,
                domain_id: str | None, after: int, slot: _StreamSlot, *,
                live: bool) -> AsyncIterator[str]:
    try:
        async for chunk in _polls(services, viewer, token, query, domain_id, after, live=live):
            yield chunk
    finally:
        slot.release()


async def _polls(services: Services, viewer: Viewer, token: str, query: EventQuery,
                 domain_id: str | None, after: int, *, live: bool) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    row = templates.get_template("_log_row.html")
    deadline = monotonic() + (STREAM_SECONDS if live else 0)
    quiet_since = monotonic()
    polls = 0
    while True:
        polls += 1
        check = polls % SESSION_CHECK_POLLS == 0

        def poll(after: int = after, check: bool = check
                 ) -> tuple[list[dict[str, Any]], int] | None:
            with services.db.sessions() as session:
                if check:  # still signed in, still allowed the logs?
                    now = services.clock.now()
                    still = open_session(session, services.vault, token, now=now)
                    if still is None or still.user_id != viewer.user_id \
                            or not still.may("logs"):
                        return None
                return newer(session, services.vault, viewer.account_id, domain_id, query,
                             after)
        polled = await in_thread(poll)
        if polled is None:
            return  # logged out: the browser's reconnection then gets the login page
        docs, after = polled
        if docs:
            rows = "".join(row.render(row=_row(d)) for d in reversed(docs))  # newest first
            data = "".join(f"data: {line}\n" for line in rows.splitlines())
            yield f"id: {after}\nevent: rows\n{data}\n"
            quiet_since = monotonic()
        elif monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": still here\n\n"
            quiet_since = monotonic()
        if monotonic() >= deadline:
            return
        await asyncio.sleep(POLL_SECONDS)


# -- one message -------------------------------------------------------------------------------

async def _message(services: Services, viewer: Viewer,
                   storage_key: str) -> tuple[AccountMessage | None, list[dict[str, Any]]]:
    def read() -> tuple[AccountMessage | None, list[dict[str, Any]]]:
        with services.db.sessions() as session:
            return (account_message(session, services.vault, viewer.account_id, storage_key),
                    of_message(session, services.vault, viewer.account_id, storage_key))
    return await in_thread(read)


@router.get("/app/logs/messages/{storage_key}")
async def message_page(storage_key: str, request: Request, viewer: ViewerDep,
                       services: ServicesDep, view: str = "html") -> Response:
    require(viewer, "logs")
    stored, events = await _message(services, viewer, storage_key)
    if stored is None and not events:
        return not_found_page(request)
    view = view if view in VIEWS else "html"
    shown: dict[str, Any] = {}
    problem = None
    if stored is not None and stored.document is not None:
        try:
            shown = await stored_view(services, viewer.account_id, stored.document,
                                      mime=view == "raw")
        except MailhavenError as error:
            problem = error.message
        if view == "html" and shown and not shown.get("body-html"):
            view = "text"  # a text-only message: nothing else to frame
    first = events[0] if events else {}
    headers = (first.get("message") or {}).get("headers") or {}
    return page(request, "app_message.html", storage_key=storage_key, stored=stored,
                timeline=[_row(d) for d in events], view=view, views=VIEWS, shown=shown,
                problem=problem, subject=shown.get("subject") or headers.get("subject", ""),
                summary=headers, stored_days=STORED_DAYS, quoted_key=quote(storage_key))


async def message_html(storage_key: str, request: Request, services: ServicesDep) -> Response:
    """The stored HTML body on its own, under its own policy (not the pages' one): shown in
    the message page's sandboxed iframe, with remote content blocked."""
    viewer = await current_viewer(request, services)
    stored = None
    if viewer is not None and viewer.may("logs"):
        stored = (await _message(services, viewer, storage_key))[0]
    body = "<p>This message is not available.</p>"
    status = 404
    if stored is not None and stored.document is not None:
        try:
            shown = await stored_view(services, viewer.account_id if viewer else "",
                                      stored.document, mime=False)
            status = 200
            body = shown.get("body-html") or (
                f"<pre>{escape(shown.get('body-plain', ''))}</pre>")
        except MailhavenError as error:
            body = f"<p>{escape(error.message)}</p>"
    return HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": MESSAGE_CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store"})


# Not made by the router's WebRoute, which would put the pages' policy over this one's.
router.add_api_route("/app/logs/messages/{storage_key}/html", message_html, methods=["GET"],
                     route_class_override=APIRoute, include_in_schema=False)


async def attachment(storage_key: str, n: int, request: Request,
                     services: ServicesDep) -> Response:
    """An attachment of the message, to save: under the downloads' policy (nothing runs,
    nothing is fetched), as its own type only when that is a safe one."""
    viewer = await current_viewer(request, services)
    if viewer is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    refused = (403, "Your role does not allow this.") if not viewer.may("logs") else None
    if refused is None:
        stored = (await _message(services, viewer, storage_key))[0]
        try:
            if stored is None or stored.document is None:
                raise NotFound("Attachment not found")
            filename, content_type, data = await stored_attachment(
                services, viewer.account_id, stored.document, n)
        except MailhavenError:
            refused = (404, "This attachment is not available.")
    headers = {**DOWNLOAD_HEADERS, "Cache-Control": "no-store"}
    if refused is not None:
        return HTMLResponse(f"<p>{refused[1]}</p>", status_code=refused[0], headers=headers)
    return Response(data, media_type=download_type(content_type), headers={
        **headers,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}"})


# Not made by the router's WebRoute either: a download keeps the downloads' policy.
router.add_api_route("/app/logs/messages/{storage_key}/attachments/{n}", attachment,
                     methods=["GET"], route_class_override=APIRoute, include_in_schema=False)
