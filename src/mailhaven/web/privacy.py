"""`/app/privacy`: the account holder's privacy center — their data to download, the
requests of the account's recipients with their deadlines, the consent ledger, the record
of processing, the audit log's verification and the sub-processors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response

from mailhaven.audit.anchor import HEAD_FILE, HeadAnchor
from mailhaven.audit.service import row_count, verify
from mailhaven.controls import service as controls
from mailhaven.deps import ServicesDep
from mailhaven.errors import MailhavenError
from mailhaven.exports.response import zip_response
from mailhaven.exports.service import export_account
from mailhaven.http import in_thread
from mailhaven.notices import service as notices
from mailhaven.privacy import intake
from mailhaven.privacy import requests as reqs
from mailhaven.services import Services
from mailhaven.storage import processing_record
from mailhaven.web import notice
from mailhaven.web.core import (
    PageRefused,
    ViewerDep,
    actor,
    page,
    posted_form,
    redirect,
    require,
    safe_next,
    web_router,
)

router = web_router()


@router.get("/app/privacy")
async def privacy_center(request: Request, services: ServicesDep,
                         viewer: ViewerDep) -> Response:
    require(viewer, "view")
    may_requests = viewer.may("privacy")
    check_chain = request.query_params.get("verify") == "audit"

    def read() -> dict[str, Any]:
        record = notice.record(services)
        with services.db.sessions() as session:
            return {"requests": _requests(services, session, viewer.account_id)
                    if may_requests else None,
                    "tally": controls.tally(session, viewer.account_id),
                    "holder_consents": [
                        {**c, "when": _when(c["at"])} for c in controls.ledger(
                            session, viewer.account_id,
                            controls.holder_index(viewer.account_id))],
                    "audit": _audit(services, session, check_chain),
                    "record": record, "subprocessors": record["subprocessors"]}

    return page(request, "app_privacy.html", **await in_thread(read),
                may_requests=may_requests)


def _requests(services: Services, session: Any, account_id: str) -> list[dict[str, Any]]:
    now = services.clock.now()
    return [reqs.as_json(services.vault, session, r, now)
            for r in reqs.listed(session, account_id)]


def _audit(services: Services, session: Any, check: bool) -> dict[str, Any]:
    """The log's size, and when asked (it reads every entry, of every account: not on
    each visit of the page) whether its chain verifies, as `mailhaven audit verify` does."""
    if not check:
        return {"checked": False, "entries": row_count(session)}
    anchor = HeadAnchor(services.settings.data_dir / HEAD_FILE)
    problems = verify(session, services.vault, anchor)
    return {"checked": True, "intact": not problems, "entries": row_count(session),
            "problems": [str(p.text) if p.row is None else f"row {p.row}: {p.text}"
                         for p in problems]}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@router.post("/app/privacy/export")
async def download_my_data(request: Request, services: ServicesDep,
                           viewer: ViewerDep) -> Response:
    """The account's access export, filed and answered as the holder's access request
    (so it is on record, with its audit trail), then streamed as a zip."""
    require(viewer, "privacy")
    await posted_form(request)
    account_id = viewer.account_id
    await in_thread(lambda: intake.file_for_account(
        services, account_id, intake.Asked("access", {}), confirm=None))
    return await zip_response(lambda path: export_account(
        services.db, services.vault, account_id, path,
        hostname=services.settings.hostname, clock=services.clock,
        directory=services.main_db), "account-export.zip")


@router.get("/app/privacy/inventory.md")
async def inventory_markdown(services: ServicesDep, viewer: ViewerDep) -> Response:
    """The record of processing as `mailhaven privacy inventory` prints it."""
    require(viewer, "view")
    record = await in_thread(lambda: notice.record(services))
    return PlainTextResponse(processing_record.markdown(record),
                             media_type="text/markdown; charset=utf-8")


@router.post("/app/privacy/objection")
async def object_to_amendment(request: Request, services: ServicesDep,
                              viewer: ViewerDep) -> Response:
    """An Admin objects to a pending amendment: the account is deleted on its date."""
    require(viewer, "manage_account")
    form = await posted_form(request)
    if form.get("confirm") != "yes":
        raise PageRefused(400, "Tick the box: objecting deletes the account on the date the "
                               "change takes effect.", title="Please confirm")
    version = form.get("version")
    try:
        row = await in_thread(lambda: notices.object_to(services, viewer.account_id, version,
                                                        actor(viewer)))
    except MailhavenError as refused:
        raise PageRefused(refused.status, refused.message) from None
    return redirect(request, safe_next(form.get("next"), "/app/privacy"),
                    flash=f"Objection recorded: the account will be deleted on "
                          f"{notices.day(row.scheduled_for)}, unless you withdraw it before.")


@router.post("/app/privacy/objection/withdraw")
async def withdraw_objection(request: Request, services: ServicesDep,
                             viewer: ViewerDep) -> Response:
    require(viewer, "manage_account")
    form = await posted_form(request)
    version = form.get("version")
    try:
        done = await in_thread(lambda: notices.withdraw(services, viewer.account_id, version,
                                                        actor(viewer)))
    except MailhavenError as refused:
        raise PageRefused(refused.status, refused.message) from None
    return redirect(request, safe_next(form.get("next"), "/app/privacy"),
                    flash=f"{done.message}.")
