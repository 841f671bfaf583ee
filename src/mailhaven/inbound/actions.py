"""What a matched route does with an inbound message, for one of its recipients.

- forward("https://…"): a row in the route-POST queue (`inbound.posts`), POSTed later in
  Mailgun's inbound format by `RoutePostSender`;
- forward("addr@…"): a new outbound message through our own queue, from the receiving
  domain: the message as received with two trace fields on top (X-Forwarded-To,
  X-Forwarded-For), its envelope sender SRS-rewritten onto the receiving domain
  (`inbound.srs`) so that SPF passes at the destination;
- store(notify=…): the `stored` event (the message is stored already, for 3 days) and,
  with notify, a POST of Mailgun's store-notify fields.
Each action runs in a savepoint: one that fails is logged by route id and skipped, and
the others still run (`dispatch` never raises for one bad action).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import replace

from sqlalchemy.orm import Session

from mailhaven.addresses import valid_addresses
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.events.service import Recipient, record
from mailhaven.inbound import posts, srs
from mailhaven.inbound.models import FORWARD, NOTIFY
from mailhaven.messages import content
from mailhaven.messages.mime import mime_fields, mime_head
from mailhaven.messages.models import Message
from mailhaven.routes.expressions import RouteAction
from mailhaven.sending.service import Outgoing, may_send, queue_all
from mailhaven.sending.stored import stored_document
from mailhaven.storage.db import is_unavailable
from mailhaven.vault import Vault

log = logging.getLogger("mailhaven.inbound.actions")
MAX_FORWARDS = 10  # X-Forwarded-To fields a message may carry already: past that, a loop
FLAGS = {"is-authenticated": False, "is-routed": True, "is-system-test": False,
         "is-test-mode": False, "is-delayed-bounce": False}


class Skipped(Exception):
    """An action that can't run for this message; said in the log (no address in it)."""


def dispatch(session: Session, vault: Vault, settings: Settings, *, message: Message,
             recipient: str, actions: list[RouteAction], now: float) -> None:
    """Run `actions` (matched for `recipient`, as received) in the caller's transaction."""
    stored = False
    for action in actions:
        try:
            with session.begin_nested():
                if action.kind == "store":
                    _store(session, vault, message, recipient, action, now,
                           record_event=not stored)
                    stored = True
                elif action.kind == "forward" and action.target:
                    _forward(session, vault, settings, message, recipient, action, now)
                else:
                    raise Skipped(f"unknown action {action.kind!r}")
        except Exception as exc:  # one bad action never fails the message nor the others
            if is_unavailable(exc):  # but the database going away fails them all: retried
                raise
            reason = str(exc) if isinstance(exc, Skipped) else type(exc).__name__
            log.warning(json.dumps({"kind": "route-action", "route": action.route_id,
                                    "action": action.kind, "skipped": reason}))


def _forward(session: Session, vault: Vault, settings: Settings, message: Message,
             recipient: str, action: RouteAction, now: float) -> None:
    target = (action.target or "").strip()
    if target.lower().startswith(("http://", "https://")):
        problem = posts.target_problem(target)
        if problem:
            raise Skipped(f"forward URL refused: {problem}")
        posts.enqueue(session, vault, message=message, recipient=recipient,
                      route_id=action.route_id, kind=FORWARD, url=target, now=now)
    else:
        forward_to_address(session, vault, settings, message, recipient, target, now)


def _store(session: Session, vault: Vault, message: Message, recipient: str,
           action: RouteAction, now: float, *, record_event: bool) -> None:
    if record_event:
        doc = stored_document(session, vault, message.domain_id, message.id)
        facts = content.facts(doc, storage_key=message.id, size=message.size, tags=[],
                              testmode=False)
        record(session, vault, account_id=message.account_id, domain_id=message.domain_id,
               facts=facts, event="stored",
               recipient=Recipient(recipient, vault.subject(session, message.account_id,
                                                            recipient)),
               timestamp=now, extra={"flags": dict(FLAGS)})
    if action.notify:
        problem = posts.target_problem(action.notify)
        if problem:
            raise Skipped(f"notify URL refused: {problem}")
        posts.enqueue(session, vault, message=message, recipient=recipient,
                      route_id=action.route_id, kind=NOTIFY, url=action.notify,
                      now=now)


def forward_to_address(session: Session, vault: Vault, settings: Settings, message: Message,
                       recipient: str, target: str, now: float) -> str:
    """Queue the message as received to `target`, from the receiving domain; its storage
    key. The copy's bounces go to the SRS address, not to our VERP return path."""
    found = valid_addresses([target])
    if len(found) != 1:
        raise Skipped("forward target is neither a URL nor one address")
    address = found[0]
    domain = session.get(Domain, message.domain_id)
    if domain is None or not may_send(domain,
                                      require_verified=settings.require_verified_domains):
        raise Skipped("the receiving domain may not send")
    stored = stored_document(session, vault, domain.id, message.id)
    raw = stored.mime_bytes
    if sum(1 for name, _ in mime_fields(mime_head(raw))
           if name == "x-forwarded-to") >= MAX_FORWARDS:
        raise Skipped("forwarding loop: the message was forwarded too often")
    trace = (f"X-Forwarded-To: {address.email}\r\n"
             f"X-Forwarded-For: {recipient} {address.email}\r\n").encode()
    document = replace(
        stored, created_at=now, to=[address.email], cc=[], headers=[], variables={},
        mime=base64.b64encode(trace + raw).decode(), method="smtp",
        envelope_sender=srs.forward(vault, posts.envelope_sender(raw), domain.name, now))
    accepted, = queue_all(session, vault, [Outgoing(
        domain, document, [address], None, len(trace) + len(raw), [], False, True,
        domain.require_tls, domain.skip_verification, message.id)], now=now)
    return accepted.storage_key
