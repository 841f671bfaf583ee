"""`/v1/privacy/retention`: an account reads and sets its retention periods (Mailhaven's own
namespace, not Mailgun's)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import StrictInt, TypeAdapter

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.http import in_thread, json_as, read_json
from mailhaven.retention import service

router = APIRouter(tags=["privacy"])

# Strict: `true` or "7" is refused, not read as 1 or 7 days.
CHANGES = TypeAdapter(dict[str, StrictInt | None])
CHANGES_BODY = {"requestBody": {"required": True, "description": (
    "Days to keep, per category; null returns a category to its default."), "content": {
        "application/json": {"schema": CHANGES.json_schema(),
                             "example": {"events": 14, "message_bodies": 3}}}}}


@router.get("/v1/privacy/retention")
async def get_retention(services: ServicesDep, account_id: AccountDep) -> dict:
    """The account's retention period for every category, its default and the limits."""
    def read() -> list[dict]:
        with services.db.sessions() as session:
            return service.policies(session, account_id)

    return {"policies": await in_thread(read)}


@router.put("/v1/privacy/retention", openapi_extra=CHANGES_BODY)
async def put_retention(request: Request, services: ServicesDep,
                        account_id: AccountDep) -> dict:
    """Set the periods of the categories named (all or none of them); answers as GET."""
    changes = json_as(CHANGES, await read_json(request))

    def write() -> list[dict]:
        with services.db.transaction() as session:
            return service.set_policies(session, account_id, changes, services.clock.now())

    return {"message": "Retention policies updated", "policies": await in_thread(write)}
