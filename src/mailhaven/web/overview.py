"""`/app`: the account at a glance — what its mail did, why some failed, what needs doing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailhaven.deps import ServicesDep
from mailhaven.domains.service import domain_names, needing_dns_work
from mailhaven.events.query import failure_replies
from mailhaven.http import in_thread
from mailhaven.privacy import requests as privacy_requests
from mailhaven.stats.service import failure_kinds, series
from mailhaven.web.charts import Series, line_chart
from mailhaven.web.core import ViewerDep, page, require, web_router

router = web_router()

EVENTS = ("accepted", "delivered", "failed", "opened", "clicked")
LABELS = {"accepted": "Sent (accepted)", "delivered": "Delivered", "failed": "Failed",
          "opened": "Opened", "clicked": "Clicked"}
# ?period=: (label, seconds back, resolution, how a period is written)
PERIODS = {"24h": ("the last 24 hours, by hour", 23 * 3600, "hour", "%H:00"),
           "30d": ("the last 30 days, by day", 29 * 86400, "day", "%d %b")}
BOUNCE_DAYS = 7


@dataclass(frozen=True)
class Period:
    label: str
    counts: dict[str, int]


@router.get("/app")
async def overview(request: Request, viewer: ViewerDep, services: ServicesDep,
                   period: str = "24h") -> Response:
    require(viewer, "view")
    period = period if period in PERIODS else "24h"
    described, back, resolution, fmt = PERIODS[period]
    now = services.clock.now()
    hostname = services.settings.hostname

    def gather() -> dict[str, Any]:
        with services.db.sessions() as session:
            ids = list(domain_names(session, viewer.account_id))
            counted = series(session, ids, events=EVENTS, start=now - back, end=now,
                             resolution=resolution)
            since = now - BOUNCE_DAYS * 86400
            reasons = failure_kinds(session, ids, since)
            pending = [privacy_requests.as_json(services.vault, session, r, now)
                       for r in privacy_requests.pending(session, viewer.account_id)]
            return {
                "periods": [Period(datetime.fromtimestamp(t, UTC).strftime(fmt), c)
                            for t, c in counted],
                "reasons": reasons,
                "replies": failure_replies(session, services.vault, viewer.account_id, ids,
                                           since) if reasons and viewer.may("logs") else [],
                "dns_work": [(d.name, d.state, records) for d, records
                             in needing_dns_work(session, viewer.account_id, hostname)],
                "privacy_requests": pending if viewer.may("privacy") else [],
            }

    found = await in_thread(gather)
    periods: list[Period] = found["periods"]
    totals = {e: sum(p.counts[e] for p in periods) for e in EVENTS}
    chart = line_chart(
        "activity", f"Your mail over {described}",
        ", ".join(f"{LABELS[e]}: {totals[e]}" for e in EVENTS) + f", over {described} (UTC).",
        [p.label for p in periods], [Series(e, [p.counts[e] for p in periods]) for e in EVENTS])
    return page(request, "app_overview.html", period=period, periods_choice=PERIODS,
                described=described, events=EVENTS, labels=LABELS, totals=totals,
                chart=chart, bounce_days=BOUNCE_DAYS, **found)
