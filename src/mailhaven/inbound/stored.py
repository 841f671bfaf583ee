"""An inbound message kept by store(), read back at its message-url
(`GET /v3/domains/{d}/messages/{storage_key}`) in Mailgun's stored-message shape, and its
attachments at the URLs that shape lists. The view is parsed in the render pool within
its budget: a hostile message can't stall the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.errors import NotFound, TooLarge, Unavailable
from mailhaven.inbound import payload
from mailhaven.inbound.posts import envelope_sender
from mailhaven.messages.models import Message
from mailhaven.messages.renderer import RenderCrashed, RenderTimeout, RenderUnavailable
from mailhaven.sending.stored import (
    RENDERER_UNAVAILABLE,
    TOO_SLOW,
    UNRENDERABLE,
    stored_document,
)
from mailhaven.services import Services
from mailhaven.vault import Vault

log = logging.getLogger("mailhaven.inbound.stored")

INBOUND = "inbound"
NO_ATTACHMENT = "Attachment not found"


def message_url(api_url: str, domain: str, storage_key: str) -> str:
    return f"{api_url.rstrip('/')}/v3/domains/{domain}/messages/{storage_key}"


def _inbound_raw(session: Session, vault: Vault, domain: Domain,
                 storage_key: str) -> tuple[bytes, str] | None:
    """(raw MIME, its recipients) of an inbound message of `domain`; None for any other."""
    message = session.get(Message, storage_key)
    if message is None or message.domain_id != domain.id or message.kind != INBOUND:
        return None
    doc = stored_document(session, vault, domain.id, storage_key)
    return doc.mime_bytes, ", ".join(doc.to)


@dataclass(frozen=True)
class InboundSource:
    """What an inbound message's message-url view is made from (read in a DB thread)."""

    raw: bytes
    recipients: str
    sender: str
    domain: str
    message_url: str
    mime: bool


def inbound_view(session: Session, vault: Vault, api_url: str, domain: Domain,
                 storage_key: str, *, mime: bool) -> InboundSource | None:
    """What the message-url's JSON for an inbound message is made of (`inbound_json`);
    None when the key names no inbound message (an outbound one has its own view)."""
    found = _inbound_raw(session, vault, domain, storage_key)
    if found is None:
        return None
    raw, recipients = found
    return InboundSource(raw, recipients, envelope_sender(raw), domain.name,
                         message_url(api_url, domain.name, storage_key), mime)


async def inbound_json(services: Services, account_id: str,
                       source: InboundSource) -> dict[str, Any]:
    """The message-url's JSON (`body-mime` with `mime`), parsed in the render pool within
    the render budget; a message past it is a clear 413, as an outbound one's is."""
    budget = services.settings.render_seconds
    try:
        return await services.renderer.run(
            account_id, budget, payload.stored_view, source.raw, source.recipients,
            source.sender, source.domain, source.message_url, source.mime)
    except RenderTimeout as exc:
        raise TooLarge(TOO_SLOW.format(budget=budget)) from exc
    except RenderCrashed as exc:
        raise TooLarge(UNRENDERABLE) from exc
    except RenderUnavailable as exc:  # ours, not the message's
        raise Unavailable(RENDERER_UNAVAILABLE) from exc
    except Exception as exc:  # the message can't be parsed: say so, never a 500
        log.error("an inbound message's view could not be made (%s)", type(exc).__name__)
        raise TooLarge(UNRENDERABLE) from exc


def inbound_attachment(session: Session, vault: Vault, domain: Domain, storage_key: str,
                       n: int) -> payload.Attachment:
    """The n-th attachment (from 0) of an inbound message, as its `attachments` list it."""
    found = _inbound_raw(session, vault, domain, storage_key)
    if found is None:
        raise NotFound(NO_ATTACHMENT)
    try:  # a message whose parts can't be read lists none
        parts = payload.attachments(payload.message_of(found[0]))
    except (payload.Unparseable, RecursionError):
        raise NotFound(NO_ATTACHMENT) from None
    if not 0 <= n < len(parts):
        raise NotFound(NO_ATTACHMENT)
    return parts[n]
