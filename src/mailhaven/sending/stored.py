"""Stored messages: `GET /v3/domains/{domain}/messages/{storage_key}`, as events link them,
and `POST` to the same URL, which sends one again."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, replace
from email import message_from_bytes, policy

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.addresses import Address, parse_addresses
from mailhaven.delivery.models import Delivery
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, NotFound, TooLarge, Unavailable, frames
from mailhaven.forms import json_object
from mailhaven.messages import content
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.messages.renderer import RenderCrashed, RenderTimeout, RenderUnavailable
from mailhaven.sending import identity
from mailhaven.sending.service import (
    Accepted,
    Outgoing,
    may_send,
    new_message_id,
    not_allowed,
    queue_all,
)
from mailhaven.services import Services
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

log = logging.getLogger("mailhaven.sending")
NOT_FOUND = "Message not found"
TOO_SLOW = "Message could not be rendered within {budget:g} seconds"
UNRENDERABLE = "Message could not be rendered"
RENDERER_UNAVAILABLE = "Messages cannot be rendered right now: try again later"


def stored_document(session: Session, vault: Vault, domain_id: str,
                    storage_key: str) -> Document:
    """The message's stored document, as it was accepted."""
    return _stored(session, vault, domain_id, storage_key)[1]


def _stored(session: Session, vault: Vault, domain_id: str,
            storage_key: str) -> tuple[Message, Document]:
    message = session.get(Message, storage_key)
    if message is None or message.domain_id != domain_id or message.content_sealed is None:
        raise NotFound(NOT_FOUND)
    key = Vault.keys(session, [message.content_key_id]).get(message.content_key_id or "")
    if key is None:  # its content key was erased
        raise NotFound(NOT_FOUND)
    return message, Document.load(vault.open(key, message.content_sealed,
                                             f"message:{message.id}"))


def resend(session: Session, vault: Vault, domain: Domain, storage_key: str,
           to: list[str], *, now: float, require_verified: bool,
           sender_policy: str = identity.DOMAIN) -> Accepted:
    """Send a stored message again, to `to` (`POST /v3/domains/{d}/messages/{key}`): accepted
    as a message of its own (a new Message-ID and storage key, queued now, its `accepted`
    events), as it was stored: the same From, To, Cc, subject, body and options. The new
    recipients are its envelope, as `/messages.mime`'s `to` is. A batch message's copy to
    one of its first recipients has that recipient's values again; to anyone else, none.
    Its sender must pass `sender_policy` now, as a new send's must."""
    if not may_send(domain, require_verified=require_verified):
        raise not_allowed(domain)
    recipients = _recipients(to)
    message, stored = _stored(session, vault, domain.id, storage_key)
    if sender_policy == identity.DOMAIN:
        identity.check_stored(session, domain, stored, require_verified=require_verified)
    document = replace(
        stored, message_id=new_message_id(domain.name, now), created_at=now,
        deliverytime=None,
        mime=None if stored.mime is None else
        base64.b64encode(content.without_message_id(stored.mime_bytes)).decode())
    batch = _first_values(session, vault, message, recipients) if stored.batch else None
    return queue_all(session, vault, [Outgoing(
        domain, document, recipients, batch, message.size, json.loads(message.tags),
        message.testmode, message.dkim, message.require_tls or domain.require_tls,
        message.skip_verification or domain.skip_verification)], now=now)[0]


def _recipients(to: list[str]) -> list[Address]:
    """The `to` of a resend, each address once: one field or several, comma-separated."""
    if not any(v.strip() for v in to):
        raise BadRequest("to parameter is missing")
    unique: dict[str, Address] = {}
    for address in parse_addresses(to, "to"):
        unique.setdefault(normalize_address(address.email), address)
    return list(unique.values())


def _first_values(session: Session, vault: Vault, message: Message,
                  recipients: list[Address]) -> dict[str, dict]:
    """Each recipient's batch values from the message's first sending, by address; {} for
    one it was not sent to then (or whose key was erased since: a new one is not the old)."""
    keys = vault.subjects(session, message.account_id, [a.email for a in recipients])
    by_key = {key.id: email for email, key in keys.items()}
    values: dict[str, dict] = {email: {} for email in keys}
    ids = list(by_key)
    for start in range(0, len(ids), 500):  # within every database's bound parameters
        for key_id, sealed in session.execute(
                select(Delivery.subject_key_id, Delivery.variables_sealed).where(
                    Delivery.message_id == message.id,
                    Delivery.subject_key_id.in_(ids[start:start + 500]))):
            if key_id is not None and sealed is not None:
                email = by_key[key_id]
                values[email] = json.loads(vault.open(keys[email], sealed,
                                                      "delivery.variables"))
    return values


async def stored_view(services: Services, account_id: str, doc: Document, *, mime: bool) -> dict:
    """The message before per-recipient rendering of a batch, in Mailgun's stored shape:
    rendered and parsed in the render pool, never on the threads that serve the API."""
    budget = services.settings.render_seconds
    try:
        return await services.renderer.run(account_id, budget, _view, doc, mime)
    except RenderTimeout as exc:
        raise TooLarge(TOO_SLOW.format(budget=budget)) from exc
    except RenderCrashed as exc:  # the message took the renderer down (all its memory?)
        raise TooLarge(UNRENDERABLE) from exc
    except RenderUnavailable as exc:  # ours, not the message's
        raise Unavailable(RENDERER_UNAVAILABLE) from exc
    except Exception as exc:  # the message can't be rendered: say so, not a 500
        log.error("the stored view of a message could not be rendered: %s", frames(exc))
        raise TooLarge(UNRENDERABLE) from exc


def _view(doc: Document, mime: bool) -> dict:
    view = stored_json(content.render(doc, ", ".join(doc.to), None), mime=mime)
    if doc.template is not None and not mime:  # Mailgun's stored shape names them
        view["X-Mailgun-Template-Name"] = doc.template.name
        view["X-Mailgun-Template-Variables"] = json.dumps(doc.template.variables)
    return view


def stored_json(raw: bytes, *, mime: bool) -> dict:
    """Mailgun's stored-message shape: parsed parts, or `body-mime` for message/rfc2822."""
    parsed = message_from_bytes(raw, policy=policy.default)
    basics = {"recipients": str(parsed.get("To", "")), "from": str(parsed.get("From", "")),
              "subject": str(parsed.get("Subject", ""))}
    if mime:
        return {**basics, "body-mime": raw.decode("utf-8", "replace")}
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return {
        **basics,
        "sender": str(parsed.get("From", "")),
        "Subject": basics["subject"], "From": basics["from"], "To": basics["recipients"],
        "Message-Id": str(parsed.get("Message-ID", "")),
        "body-plain": content.part_text(plain),
        "body-html": content.part_text(html),
        "message-headers": [[name, str(value)] for name, value in parsed.items()],
        "attachments": content.attachment_summaries(parsed),
        # a .mime message or an h: header may carry anything there
        "X-Mailgun-Variables": json_object(str(parsed.get("X-Mailgun-Variables", ""))) or {},
    }



@dataclass(frozen=True)
class AccountMessage:
    """A stored message of an account as its panel shows it: its document, or None when
    its content is gone (kept 3 days, then purged; or its key erased) or was received."""

    storage_key: str
    domain_name: str
    kind: str
    created_at: float
    document: Document | None


def account_message(session: Session, vault: Vault, account_id: str,
                    storage_key: str) -> AccountMessage | None:
    """The account's message stored under `storage_key`; None when it has none."""
    message = session.get(Message, storage_key)
    if message is None or message.account_id != account_id:
        return None
    domain = session.get(Domain, message.domain_id)
    document = None
    if message.kind in ("form", "mime"):
        try:
            document = _stored(session, vault, message.domain_id, storage_key)[1]
        except NotFound:
            document = None
    return AccountMessage(storage_key, domain.name if domain else "", message.kind,
                          message.created_at, document)


async def stored_attachment(services: Services, account_id: str, doc: Document,
                            n: int) -> tuple[str, str, bytes]:
    """The message's attachment number `n` (from 0): filename, content type and bytes,
    taken from the message as rendered (in the render pool)."""
    found = await services.renderer.run(account_id, services.settings.render_seconds,
                                        _attachment, doc, n)
    if found is None:
        raise NotFound("Attachment not found")
    return found


def _attachment(doc: Document, n: int) -> tuple[str, str, bytes] | None:
    parsed = message_from_bytes(content.render(doc, ", ".join(doc.to), None),
                                policy=policy.default)
    parts = list(parsed.iter_attachments()) if parsed.is_multipart() else []
    if not 0 <= n < len(parts):
        return None
    part = parts[n]
    payload = part.get_payload(decode=True)
    return (part.get_filename() or f"attachment-{n + 1}", part.get_content_type(),
            payload if isinstance(payload, bytes) else b"")
