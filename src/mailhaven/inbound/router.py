"""Route POSTs as a customer sees them: what happened to each forward/notify POST."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.errors import BadRequest
from mailhaven.inbound.posts import recent_posts
from mailhaven.openapi import Field, query

router = APIRouter(tags=["routes"])


@router.get("/v1/admin/domains/{domain_name}/route_posts",
            summary="Recent route POSTs and their attempts", openapi_extra=query(
    Field("limit", "How many POSTs, newest first: 1 to 1000 (default 100)", "integer",
          example="100"),
    Field("status", "Only POSTs in this state",
          enum=("pending", "sent", "refused", "gave-up", "cancelled"))))
async def route_posts(domain_name: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict[str, object]:
    """Mailhaven extension, beside `webhook_deliveries`: the domain's recent forward() and
    store(notify=…) POSTs, newest first, each attempt's time, HTTP status and error
    (`?limit=` 1–1000, `?status=pending|sent|refused|gave-up|cancelled`)."""
    try:
        limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    status = request.query_params.get("status")
    items = await on_domain(services, account_id, domain_name, lambda session, domain: (
        recent_posts(session, services.vault, account_id, domain.id, limit=limit,
                     status=status)))
    return {"items": items}
