"""`/app`: the account at a glance."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailhaven.web.core import ViewerDep, page, web_router

router = web_router()


@router.get("/app")
async def overview(request: Request, _: ViewerDep) -> Response:
    return page(request, "app_overview.html")
