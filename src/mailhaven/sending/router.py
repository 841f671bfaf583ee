"""`POST /v3/{domain}/messages` and `/messages.mime`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import Counter

from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.http import read_form
from mailhaven.sending.service import Accepted, SendAttempt
from mailhaven.sending.stored import stored_document, stored_view
from mailhaven.storage.group_commit import GroupCommit

router = APIRouter(tags=["messages"])

ACCEPTED = Counter("mailhaven_messages_accepted_total", "Messages accepted for delivery")
RECIPIENTS = Counter("mailhaven_recipients_accepted_total", "Recipients queued for delivery")


async def _send(domain_name: str, request: Request, services: ServicesDep, account_id: str,
                *, mime: bool) -> dict:
    fields, files = await read_form(request)
    sends: GroupCommit[SendAttempt, Accepted] = request.app.state.sends
    accepted = await sends.submit(SendAttempt(account_id, domain_name, fields, files, mime))
    services.delivery_bell.ring()  # committed: an idle worker in this process starts now
    ACCEPTED.inc()
    RECIPIENTS.inc(accepted.recipients)
    return {"id": accepted.id, "message": "Queued. Thank you."}


@router.post("/v3/{domain_name}/messages")
async def send_message(domain_name: str, request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict:
    return await _send(domain_name, request, services, account_id, mime=False)


@router.post("/v3/{domain_name}/messages.mime")
async def send_mime(domain_name: str, request: Request, services: ServicesDep,
                    account_id: AccountDep) -> dict:
    return await _send(domain_name, request, services, account_id, mime=True)


@router.get("/v3/domains/{domain_name}/messages/{storage_key}")
async def get_stored(domain_name: str, storage_key: str, request: Request,
                     services: ServicesDep, account_id: AccountDep) -> dict:
    as_mime = "message/rfc2822" in request.headers.get("accept", "")

    doc = await on_domain(services, account_id, domain_name, lambda session, domain: (
        stored_document(session, services.vault, domain.id, storage_key)))
    return await stored_view(services, account_id, doc, mime=as_mime)
