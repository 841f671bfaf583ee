"""`GET /v3/{domain}/stats/total`, in Mailgun's shape."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from mailhaven.clock import format_rfc2822
from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import owned_domain
from mailhaven.errors import BadRequest
from mailhaven.events.query import time_param
from mailhaven.http import in_thread
from mailhaven.stats import service

router = APIRouter(tags=["stats"])

_DURATION = re.compile(r"^(\d+)([hdm])$")
_SECONDS = {"h": 3600, "d": 86400, "m": 30 * 86400}
DEFAULT_SPAN = 7 * 86400


@router.get("/v3/{domain_name}/stats/total")
async def stats_total(domain_name: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict:
    params = request.query_params
    events = params.getlist("event")
    if not events:
        raise BadRequest("Missing mandatory parameter: event")
    resolution = params.get("resolution") or "day"
    end = time_param(params["end"], "end") if params.get("end") else services.clock.now()
    if params.get("duration"):
        match = _DURATION.match(params["duration"])
        if match is None:
            raise BadRequest("Invalid 'duration' parameter: use e.g. 24h, 7d or 1m")
        start = end - int(match.group(1)) * _SECONDS[match.group(2)]
    else:
        start = time_param(params["start"], "start") if params.get("start") else end - DEFAULT_SPAN
    if start > end:
        raise BadRequest("'start' must be before 'end'")

    def run() -> list[dict]:
        with services.db.sessions() as session:
            domain = owned_domain(session, account_id, domain_name)
            return service.totals(session, domain.id, events=events, start=start, end=end,
                                  resolution=resolution)
    stats = await in_thread(run)
    return {"start": format_rfc2822(start), "end": format_rfc2822(end),
            "resolution": resolution, "stats": stats}
