"""`/dev/mailbox`: read the development mailbox in a browser (only with `serve --dev`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from mailhaven.deps import ServicesDep
from mailhaven.dev.mailbox import list_captured, read_captured, verify_dkim
from mailhaven.errors import NotFound
from mailhaven.http import in_thread

router = APIRouter(include_in_schema=False)
templates = Environment(loader=PackageLoader("mailhaven", "web/templates"),
                        autoescape=select_autoescape())


@router.get("/dev/mailbox", response_class=HTMLResponse)
async def mailbox(services: ServicesDep) -> HTMLResponse:
    def run() -> str:
        folder = services.settings.data_dir / "dev-mailbox"
        rows = [(m, verify_dkim(services.db, m.data)) for m in list_captured(folder)]
        return templates.get_template("mailbox.html").render(rows=rows)
    return HTMLResponse(await in_thread(run))


@router.get("/dev/mailbox/{message_id}")
async def mailbox_message(message_id: str, services: ServicesDep) -> Response:
    captured = read_captured(services.settings.data_dir / "dev-mailbox", message_id)
    if captured is None:
        raise NotFound("Message not found")
    return Response(captured.data, media_type="text/plain; charset=utf-8")
