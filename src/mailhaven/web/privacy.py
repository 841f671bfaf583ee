"""(Being built: issue 14.)"""

from __future__ import annotations

from mailhaven.web.core import web_router

router = web_router()
