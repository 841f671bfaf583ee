"""The sending surface: `POST /v3/{domain}/messages` and `/messages.mime`, stored messages
(read, resent), scheduled and queued mail cancelled, and the state of a domain's queues."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from prometheus_client import Counter
from sqlalchemy.orm import Session

from mailhaven.delivery.queue import cancel_queued
from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.domains.models import Domain
from mailhaven.errors import NotFound
from mailhaven.http import form_body, in_thread, json_responses, read_form
from mailhaven.inbound.stored import InboundSource, inbound_attachment, inbound_json, inbound_view
from mailhaven.messages.document import Document
from mailhaven.openapi import STRING, YES_NO, Field, form, obj, query
from mailhaven.sending import queues
from mailhaven.sending.service import Accepted, SendAttempt
from mailhaven.sending.stored import resend, stored_document, stored_view
from mailhaven.storage.group_commit import GroupCommit

router = APIRouter(tags=["messages"])

ACCEPTED = Counter("mailhaven_messages_accepted_total", "Messages accepted for delivery")
RECIPIENTS = Counter("mailhaven_recipients_accepted_total", "Recipients queued for delivery")
QUEUED = "Queued. Thank you."


ADDRESSES = "Repeat the field or separate addresses with commas; \"Bob <bob@example.com>\" allowed"
OPTIONS = (  # Mailgun's names and meanings (its OpenAPI description's, shortened)
    Field("template", "The name of a stored template to render the body from"),
    Field("t:version", "Render this version of the template instead of the active one"),
    Field("t:text", "Also render a plain text version of the template", "boolean"),
    Field("t:variables", "A JSON object: the template's variables", example='{"name": "Ann"}'),
    Field("o:tag", "A tag for statistics and events (up to 3)", repeated=True),
    Field("o:dkim", "Sign with DKIM (default: yes)", "boolean"),
    Field("o:deliverytime", "Deliver at this time (RFC 2822), up to 7 days ahead",
          example="Thu, 13 Oct 2011 18:02:00 +0000"),
    Field("o:testmode", "Accept and record the message but do not deliver it", "boolean"),
    Field("o:tracking", "Track opens and clicks", "boolean"),
    Field("o:tracking-clicks", "Track clicks (htmlonly: in the HTML part only)",
          enum=(*YES_NO, "htmlonly")),
    Field("o:tracking-opens", "Track opens", "boolean"),
    Field("o:require-tls", "Deliver over TLS only, else fail", "boolean"),
    Field("o:skip-verification", "Do not verify the receiving server's certificate", "boolean"),
    Field("o:sending-ip", "Accepted for compatibility; Mailhaven sends from its own address"),
    Field("o:sending-ip-pool", "Accepted for compatibility"),
    Field("recipient-variables", "Batch sending: a JSON object of variables per recipient "
          "address; each recipient gets a copy of their own", example='{"bob@example.com": '
          '{"first": "Bob"}}'),
    Field("h:X-My-Header", "Any header: h: and its name (e.g. h:Reply-To)"),
    Field("v:my-var", "Custom data: v: and a name; shown as user-variables in events"))
SEND_BODY = form(
    Field("from", "The sender's address (\"Name <a@b>\" allowed)", required=True,
          example="Excited User <mailgun@mg.example.com>"),
    Field("to", f"The recipients. {ADDRESSES}; at most 1000", required=True, repeated=True),
    Field("cc", f"Copy recipients. {ADDRESSES}", repeated=True),
    Field("bcc", f"Blind copy recipients. {ADDRESSES}", repeated=True),
    Field("subject", "The subject (not needed with a template that has one)"),
    Field("text", "The plain text body"),
    Field("html", "The HTML body"),
    Field("amp-html", "The AMP part"),
    Field("attachment", "A file attached (multipart only; repeat for more)", "file",
          repeated=True),
    Field("inline", "A file attached inline: its filename is its Content-ID", "file",
          repeated=True),
    *OPTIONS)
MIME_BODY = form(
    Field("to", f"All recipients, cc and bcc included. {ADDRESSES}", required=True,
          repeated=True),
    Field("message", "The whole MIME message, as a file part", "file", required=True),
    *OPTIONS)
SENT: dict[int | str, dict[str, Any]] = {200: {
    "description": "Accepted and queued", "content": {"application/json": {
        "schema": obj({"id": {**STRING, "description": "The message's Message-ID, in <>"},
                       "message": STRING}, title="Queued"),
        "example": {
        "id": "<20111114174239.25659.5817@samples.mailgun.org>",
        "message": "Queued. Thank you."}}}}}


async def _send(domain_name: str, request: Request, services: ServicesDep, account_id: str,
                *, mime: bool) -> dict:
    fields, files = await read_form(request)
    sends: GroupCommit[SendAttempt, Accepted] = request.app.state.sends
    accepted = await sends.submit(SendAttempt(account_id, domain_name, fields, files, mime))
    services.delivery_bell.ring()  # committed: an idle worker in this process starts now
    ACCEPTED.inc()
    RECIPIENTS.inc(accepted.recipients)
    return {"id": accepted.id, "message": QUEUED}


@router.post("/v3/{domain_name}/messages", openapi_extra=SEND_BODY, responses=SENT)
async def send_message(domain_name: str, request: Request, services: ServicesDep,
                       account_id: AccountDep) -> dict:
    return await _send(domain_name, request, services, account_id, mime=False)


@router.post("/v3/{domain_name}/messages.mime", openapi_extra=MIME_BODY, responses=SENT)
async def send_mime(domain_name: str, request: Request, services: ServicesDep,
                    account_id: AccountDep) -> dict:
    return await _send(domain_name, request, services, account_id, mime=True)


@router.get("/v3/domains/{domain_name}/messages/{storage_key}")
async def get_stored(domain_name: str, storage_key: str, request: Request,
                     services: ServicesDep, account_id: AccountDep) -> dict:
    as_mime = "message/rfc2822" in request.headers.get("accept", "")

    def read(session: Session, domain: Domain) -> tuple[InboundSource | None, Document | None]:
        # an inbound message (route's store()) has Mailgun's inbound shape
        inbound = inbound_view(session, services.vault, services.settings.api_url, domain,
                               storage_key, mime=as_mime)
        if inbound is not None:
            return inbound, None
        return None, stored_document(session, services.vault, domain.id, storage_key)
    inbound, doc = await on_domain(services, account_id, domain_name, read)
    if inbound is not None:
        return await inbound_json(services, account_id, inbound)
    assert doc is not None
    return await stored_view(services, account_id, doc, mime=as_mime)


@router.get("/v3/domains/{domain_name}/messages/{storage_key}/attachments/{n}",
            summary="Get an attachment of a stored inbound message", response_class=Response,
            responses={200: {"description": "The attachment, as its own type", "content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}})
async def get_stored_attachment(domain_name: str, storage_key: str, n: int,
                                services: ServicesDep, account_id: AccountDep) -> Response:
    """An attachment of a message a route stored, as its `attachments` URLs name them
    (numbered from 0)."""
    part = await on_domain(services, account_id, domain_name, lambda session, domain: (
        inbound_attachment(session, services.vault, domain, storage_key, n)))
    quoted = quote(part.filename, safe="")
    return Response(part.data, media_type=part.content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}"})


RESEND_BODY_LIMIT = 1024 * 1024  # `to` alone: a thousand addresses fit many times over
RESEND_BODY = form_body({"to": (
    "The recipients: repeat the field, or separate addresses with commas (\"Name <a@b>\" "
    "allowed; duplicates count once; at most 1000). Also read from the query string.")},
    required=("to",))
RESENT = json_responses({
    200: ("Accepted as a message of its own",
          {"id": "<20261201100000.1f2e3d4c5b6a7980@mg.example.com>", "message": QUEUED}),
    400: ("No recipient, or one that is not an address", {"message": "to parameter is missing"}),
    403: ("The domain may not send yet", {"message": "Domain mg.example.com is not allowed to "
                                                     "send: The domain is unverified and "
                                                     "requires DNS configuration. …"}),
    404: ("No such domain, or no stored message under that key",
          {"message": "Message not found"})})


@router.post("/v3/domains/{domain_name}/messages/{storage_key}",
             openapi_extra=RESEND_BODY | query(Field(
                 "to", "More recipients, as in the body", repeated=True,
                 example="bob@example.com")),
             responses=RESENT, summary="Resend a stored message")
async def resend_stored(domain_name: str, storage_key: str, request: Request,
                        services: ServicesDep, account_id: AccountDep) -> dict:
    """Send a stored message again, to the recipients in `to` (Mailgun's field)."""
    fields, _ = await read_form(request, limit=RESEND_BODY_LIMIT)
    # Mailgun reads form values from the body and the query string alike (Go's r.Form).
    to = [v for k, v in fields if k == "to"] + request.query_params.getlist("to")
    require_verified = services.settings.require_verified_domains
    accepted = await on_domain(services, account_id, domain_name, lambda session, domain: (
        resend(session, services.vault, domain, storage_key, to, now=services.clock.now(),
               require_verified=require_verified,
               sender_policy=services.settings.sender_policy)), write=True)
    services.delivery_bell.ring()
    ACCEPTED.inc()
    RECIPIENTS.inc(accepted.recipients)
    return {"id": accepted.id, "message": QUEUED}


DOMAIN_GONE = "domain not found"  # sic: Mailgun's envelopes 404 is in lower case
CANCELLED = json_responses({
    200: ("The domain's scheduled and queued mail is cancelled", {"message": "done"}),
    404: ("No such domain", {"message": DOMAIN_GONE})})


@router.delete("/v3/{domain_name}/envelopes", responses=CANCELLED,
               summary="Delete scheduled and undelivered mail")
async def delete_envelopes(domain_name: str, services: ServicesDep,
                           account_id: AccountDep) -> dict:
    """Cancel every copy of the domain's mail still queued: scheduled (`o:deliverytime`),
    due, or waiting for a retry. A copy a worker is attempting at this moment finishes."""
    try:
        domain_id = await on_domain(services, account_id, domain_name,
                                    lambda _session, domain: domain.id)
    except NotFound as exc:
        raise NotFound(DOMAIN_GONE) from exc
    await in_thread(lambda: cancel_queued(services.db, account_id, domain_id,
                                          now=services.clock.now()))
    return {"message": "done"}


QUEUES = json_responses({
    200: ("The domain's regular and scheduled queues", {
        "regular": {"is_disabled": False, "queued": 12},
        "scheduled": {"is_disabled": False, "queued": 3}}),
    404: ("No such domain", {"message": "Domain not found"})})


@router.get("/v3/domains/{domain_name}/sending_queues", responses=QUEUES,
            summary="Get the domain's sending queues")
async def sending_queues(domain_name: str, services: ServicesDep,
                         account_id: AccountDep) -> dict:
    """Whether each queue takes new messages (`is_disabled`, and why not), and how many
    copies wait in it (`queued`, Mailhaven's addition)."""
    require_verified = services.settings.require_verified_domains

    def read(session: Session, domain: Domain) -> dict:
        return queues.state(session, domain, now=services.clock.now(),
                            require_verified=require_verified)
    return await on_domain(services, account_id, domain_name, read)
