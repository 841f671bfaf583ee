"""An inbound message kept by store(), read back at its message-url
(`GET /v3/domains/{d}/messages/{storage_key}`) in Mailgun's stored-message shape, and its
attachments at the URLs that shape lists."""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Any

from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.errors import NotFound
from mailhaven.inbound import payload
from mailhaven.inbound.posts import envelope_sender
from mailhaven.messages.models import Message
from mailhaven.sending.stored import stored_document
from mailhaven.vault import Vault

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


def inbound_view(session: Session, vault: Vault, api_url: str, domain: Domain,
                 storage_key: str, *, mime: bool) -> dict[str, Any] | None:
    """The message-url's JSON for an inbound message (`body-mime` with `mime`); None when
    the key names no inbound message (an outbound one has its own view)."""
    found = _inbound_raw(session, vault, domain, storage_key)
    if found is None:
        return None
    raw, recipients = found
    sender = envelope_sender(raw)
    if mime:
        return payload.stored_mime(raw, recipient=recipients, sender=sender)
    return payload.stored_fields(raw, recipient=recipients, sender=sender, domain=domain.name,
                                 message_url=message_url(api_url, domain.name, storage_key))


def inbound_attachment(session: Session, vault: Vault, domain: Domain, storage_key: str,
                       n: int) -> payload.Attachment:
    """The n-th attachment (from 0) of an inbound message, as its `attachments` list it."""
    found = _inbound_raw(session, vault, domain, storage_key)
    if found is None:
        raise NotFound(NO_ATTACHMENT)
    parts = payload.attachments(message_from_bytes(found[0], policy=policy.default))
    if not 0 <= n < len(parts):
        raise NotFound(NO_ATTACHMENT)
    return parts[n]
