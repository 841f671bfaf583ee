"""`/v1/privacy/notices…`, `/v1/privacy/account` and `/v1/privacy/subprocessors`: the
notice's versions, objecting to an amendment (an Admin's key: it deletes the account on the
amendment's date), and the register of sub-processors."""

from __future__ import annotations

from fastapi import APIRouter

from mailhaven.accounts.models import Account
from mailhaven.clock import iso8601
from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.errors import NotFound
from mailhaven.http import in_thread
from mailhaven.notices import service, subprocessors
from mailhaven.openapi import NO_FIELDS

router = APIRouter(tags=["privacy"])


@router.get("/v1/privacy/notices")
async def list_notices(services: ServicesDep, _account_id: AccountDep) -> dict:
    now = services.clock.now()

    def run() -> dict:
        with services.main_db.sessions() as session:
            return {"items": [n.as_json(now) for n in service.notice_versions(session)]}

    return await in_thread(run)


@router.get("/v1/privacy/notices/{version}")
async def get_notice(version: str, services: ServicesDep, _account_id: AccountDep) -> dict:
    now = services.clock.now()

    def run() -> dict:
        with services.main_db.sessions() as session:
            found = service.get_version(session, version)
        if found is None:
            raise NotFound("No such notice version")
        return found.as_json(now, text=True)

    return await in_thread(run)


def _objection_json(row: object) -> dict:
    from mailhaven.notices.models import NoticeObjection

    assert isinstance(row, NoticeObjection)
    return {"version": row.version, "objected_at": iso8601(row.objected_at),
            "scheduled_for": iso8601(row.scheduled_for),
            "withdrawn_at": iso8601(row.withdrawn_at) if row.withdrawn_at else None}


@router.post("/v1/privacy/notices/{version}/objection", openapi_extra=NO_FIELDS)
async def object_to(version: str, services: ServicesDep, account_id: AccountDep) -> dict:
    """The account objects: it is deleted on the amendment's effective date."""
    row = await in_thread(lambda: service.object_to(services, account_id, version))
    return {"message": "Objection recorded: the account will be deleted when this version "
                       "takes effect, unless you withdraw it before",
            "objection": _objection_json(row)}


@router.delete("/v1/privacy/notices/{version}/objection")
async def withdraw(version: str, services: ServicesDep, account_id: AccountDep) -> dict:
    done = await in_thread(lambda: service.withdraw(services, account_id, version))
    left = done.still_scheduled
    return {"message": done.message, "objection": _objection_json(done.objection),
            "deletion_scheduled_at": iso8601(left.scheduled_for) if left else None}


@router.get("/v1/privacy/account")
async def account_state(services: ServicesDep, account_id: AccountDep) -> dict:
    def run() -> dict:
        with services.db.sessions() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise NotFound("No such account")
            pending = service.objection(session, account_id)
            return {"account": account.id, "region": account.region,
                    "created_at": iso8601(account.created_at),
                    "deletion_scheduled_at": iso8601(pending.scheduled_for)
                    if pending else None,
                    "objection": {"version": pending.version,
                                  "scheduled_for": iso8601(pending.scheduled_for)}
                    if pending else None}

    return await in_thread(run)


@router.get("/v1/privacy/subprocessors")
async def list_subprocessors(services: ServicesDep, _account_id: AccountDep) -> dict:
    now = services.clock.now()

    def run() -> dict:
        with services.main_db.sessions() as session:
            return {"items": [subprocessors.as_json(s, now)
                              for s in subprocessors.listed(session, now)]}

    return await in_thread(run)
