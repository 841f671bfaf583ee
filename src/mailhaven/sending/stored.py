"""Stored messages: `GET /v3/domains/{domain}/messages/{storage_key}`, as events link them."""

from __future__ import annotations

import json
import logging
from email import message_from_bytes, policy
from email.message import MIMEPart

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.errors import NotFound, TooLarge, Unavailable, frames
from mailhaven.forms import json_object
from mailhaven.messages import content
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.messages.renderer import RenderCrashed, RenderTimeout, RenderUnavailable
from mailhaven.services import Services
from mailhaven.vault import Vault, VaultKey

log = logging.getLogger("mailhaven.sending")
NOT_FOUND = "Message not found"
TOO_SLOW = "Message could not be rendered within {budget:g} seconds"
UNRENDERABLE = "Message could not be rendered"
RENDERER_UNAVAILABLE = "Messages cannot be rendered right now: try again later"


def stored_document(session: Session, vault: Vault, domain_id: str,
                    storage_key: str) -> Document:
    """The message's stored document, as it was accepted."""
    message = session.get(Message, storage_key)
    if message is None or message.domain_id != domain_id or message.content_sealed is None:
        raise NotFound(NOT_FOUND)
    key = session.scalar(select(VaultKey).where(VaultKey.id == message.content_key_id))
    if key is None:  # its content key was erased
        raise NotFound(NOT_FOUND)
    return Document.load(vault.open(key, message.content_sealed, f"message:{message.id}"))


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
        "body-plain": _text(plain),
        "body-html": _text(html),
        "message-headers": [[name, str(value)] for name, value in parsed.items()],
        "attachments": content.attachment_summaries(parsed),
        # a .mime message or an h: header may carry anything there
        "X-Mailgun-Variables": json_object(str(parsed.get("X-Mailgun-Variables", ""))) or {},
    }


def _text(part: MIMEPart | None) -> str:
    """A text part's content; one in a charset Python doesn't know is read as UTF-8, its
    undecodable bytes replaced, as a mail client would still show it."""
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
