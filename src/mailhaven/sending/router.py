"""`POST /v3/{domain}/messages` and `/messages.mime`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import Counter

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import owned_domain
from mailhaven.errors import TooLarge
from mailhaven.http import in_thread, read_form
from mailhaven.sending.renderer import RenderTimeout
from mailhaven.sending.service import Accepted, SendAttempt
from mailhaven.sending.stored import TOO_SLOW, stored_document, stored_view
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

    def load() -> dict:
        with services.db.sessions() as session:
            domain = owned_domain(session, account_id, domain_name)
            return stored_document(session, services.vault, domain.id, storage_key)
    doc = await in_thread(load)
    budget = services.settings.render_seconds
    try:  # in the render pool: never on the threads that serve the API
        return await services.renderer.run(account_id, budget, stored_view, doc, as_mime)
    except RenderTimeout as exc:
        raise TooLarge(TOO_SLOW.format(budget=budget)) from exc
