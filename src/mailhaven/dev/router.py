"""`/dev/mailbox`: read the development mailbox in a browser (only with `serve --dev`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from mailhaven.deps import ServicesDep
from mailhaven.dev.mailbox import Captured, dkim_result, read_captured, search_captured
from mailhaven.dev.message import open_message
from mailhaven.errors import NotFound
from mailhaven.http import in_thread
from mailhaven.messages.downloads import DOWNLOAD_HEADERS
from mailhaven.services import Services

router = APIRouter(include_in_schema=False)
templates = Environment(loader=PackageLoader("mailhaven", "web/templates"),
                        autoescape=select_autoescape())
PAGE_SIZE = 50
VIEWS = ("html", "text", "headers", "raw")
# Our own pages: the panel's policy (no inline script or style, nothing from elsewhere).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY"}
# A message's own HTML, shown in a sandboxed frame of the message page: no script, nothing
# fetched (remote images stay unloaded; `cid:` images arrive inlined as data: URLs).
FRAME_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data: cid:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; "
    "sandbox",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN"}


def received(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def received_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


templates.filters["received"] = received
templates.filters["received_iso"] = received_iso


def _folder(services: Services) -> Path:
    return services.settings.data_dir / "dev-mailbox"


def _page(name: str, status_code: int = 200, **values: object) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values),
                        status_code=status_code, headers=PAGE_HEADERS)


def _captured(services: Services, message_id: str) -> Captured:
    captured = read_captured(_folder(services), message_id)
    if captured is None:
        raise NotFound("Message not found")
    return captured


@router.get("/dev/mailbox", response_class=HTMLResponse)
async def mailbox(services: ServicesDep, q: str = "",
                  page: Annotated[str, Query()] = "1") -> HTMLResponse:
    number = int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1

    def run() -> HTMLResponse:
        found, total = search_captured(_folder(services), q, offset=(number - 1) * PAGE_SIZE,
                                       limit=PAGE_SIZE)
        rows = [(m, open_message(m.data), dkim_result(services.db, m.data)) for m in found]
        pages = max(1, -(-total // PAGE_SIZE))

        def link(to: int) -> str:
            return "/dev/mailbox?" + urlencode({k: v for k, v in (("q", q), ("page", to))
                                                if v and v != 1})
        return _page("mailbox.html", rows=rows, q=q, total=total, page=number, pages=pages,
                     newer=link(number - 1) if number > 1 else None,
                     older=link(number + 1) if number < pages else None)
    return await in_thread(run)


@router.get("/dev/mailbox/{message_id}", response_class=HTMLResponse)
async def mailbox_message(message_id: str, services: ServicesDep,
                          view: str = "") -> HTMLResponse:
    def run() -> HTMLResponse:
        captured = read_captured(_folder(services), message_id)
        if captured is None:
            return _page("mailbox_message.html", status_code=404, message=None)
        opened = open_message(captured.data)
        shown = view if view in VIEWS else ("html" if opened.html is not None else "text")
        return _page("mailbox_message.html", message=captured, opened=opened, view=shown,
                     views=VIEWS, dkim=dkim_result(services.db, captured.data),
                     raw=captured.data.decode("utf-8", "replace") if shown == "raw" else "")
    return await in_thread(run)


@router.get("/dev/mailbox/{message_id}/raw")
async def mailbox_raw(message_id: str, services: ServicesDep) -> Response:
    captured = await in_thread(lambda: _captured(services, message_id))
    return Response(captured.data, media_type="text/plain; charset=utf-8",
                    headers=DOWNLOAD_HEADERS)


@router.get("/dev/mailbox/{message_id}/html")
async def mailbox_html(message_id: str, services: ServicesDep) -> Response:
    opened = await in_thread(lambda: open_message(_captured(services, message_id).data))
    if opened.html is None:
        raise NotFound("The message has no HTML body")
    return HTMLResponse(opened.html, headers=FRAME_HEADERS)


@router.get("/dev/mailbox/{message_id}/attachments/{n}")
async def mailbox_attachment(message_id: str, n: int, services: ServicesDep) -> Response:
    opened = await in_thread(lambda: open_message(_captured(services, message_id).data))
    if not 0 <= n < len(opened.attachments):
        raise NotFound("Attachment not found")
    attachment = opened.attachments[n]
    return Response(attachment.data, media_type=attachment.content_type,
                    headers={**DOWNLOAD_HEADERS,
                             "Content-Disposition": content_disposition(attachment.filename)})


def content_disposition(filename: str) -> str:
    """`attachment`, with the name as plain ASCII and exactly (RFC 6266's filename*)."""
    plain = re.sub(r"[^\x20-\x7e]|[\"\\]", "_", filename) or "attachment"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
