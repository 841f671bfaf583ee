"""Accept a message: seal it, queue one delivery per recipient, emit `accepted` — one commit."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.delivery.models import QUEUED, Delivery
from mailhaven.domains.models import Domain
from mailhaven.domains.service import owned_domain
from mailhaven.errors import Forbidden, MailhavenError, NotFound
from mailhaven.events.service import Recipient, record, record_each, record_many
from mailhaven.sending import content
from mailhaven.sending.models import Message
from mailhaven.sending.request import (
    Attachment,
    SendRequest,
    build_request,
    header_text,
    valid_addresses,
)
from mailhaven.storage.base import new_id
from mailhaven.storage.db import Database
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address


@dataclass(frozen=True)
class Accepted:
    id: str  # "<message-id>", as Mailgun returns it
    storage_key: str
    recipients: int


def new_message_id(domain: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    return f"{stamp}.{secrets.token_hex(8)}@{domain}"


def send(db: Database, vault: Vault, account_id: str, domain_name: str,
         fields: list[tuple[str, str]], files: list[tuple[str, Attachment]], *, mime: bool,
         clock: Clock = SYSTEM_CLOCK, require_verified: bool = False) -> Accepted:
    """Validate and accept one send request in one transaction; a refused request is
    committed as a `rejected` event before its error goes back to the client."""
    with db.transaction() as session:
        try:
            domain = owned_domain(session, account_id, domain_name, with_keys=False)
        except NotFound as exc:
            raise NotFound(f"Domain not found: {domain_name}") from exc
        if require_verified and domain.state != "active":
            # DNS proves the account owns the name; until then, nobody sends as it.
            raise Forbidden(f"Domain {domain_name} is not allowed to send: The domain is "
                            f"unverified and requires DNS configuration. Verify it with "
                            f"PUT /v4/domains/{domain_name}/verify once the records in "
                            f"GET /v4/domains/{domain_name} are published.")
        try:
            request = build_request(fields, files, mime=mime, now=clock.now())
        except MailhavenError as exc:
            reject(session, vault, domain, fields, exc.message, clock)
            refusal = exc
        else:
            return accept(session, vault, domain, request, clock)
    raise refusal


def accept(session: Session, vault: Vault, domain: Domain, request: SendRequest,
           clock: Clock = SYSTEM_CLOCK) -> Accepted:
    now = clock.now()
    storage_key = new_id()
    message_id = request.message_id or new_message_id(domain.name, now)
    content_key = vault.new_content_key(session, domain.account_id)
    document = content.dump(request, message_id=message_id, created_at=now)
    # Plain INSERTs (Core, not the ORM's unit of work): a send is the hot path, and
    # nothing here needs the rows as objects afterwards.
    session.execute(Message.__table__.insert(), {
        "id": storage_key, "account_id": domain.account_id, "domain_id": domain.id,
        "message_id": message_id, "content_key_id": content_key.id,
        "content_sealed": vault.seal(content_key, document, f"message:{storage_key}"),
        "kind": "mime" if request.mime is not None else "form", "size": request.size,
        "batch": request.recipient_variables is not None, "tags": json.dumps(request.tags),
        "testmode": request.testmode,
        "dkim": request.dkim if request.dkim is not None else True,
        "require_tls": request.require_tls or domain.require_tls,
        "skip_verification": request.skip_verification or domain.skip_verification,
        "created_at": now,
    })
    recipients = request.recipients
    subjects = vault.subjects(session, domain.account_id, [r.email for r in recipients])
    due = max(now, request.deliverytime or now)
    rows = []
    for address in recipients:
        key = subjects[normalize_address(address.email)]
        variables = None
        if request.recipient_variables is not None:
            own = request.recipient_variables.get(normalize_address(address.email), {})
            variables = vault.seal(key, json.dumps(own).encode(), "delivery.variables")
        rows.append({
            "message_id": storage_key, "account_id": domain.account_id,
            "domain_id": domain.id, "subject_key_id": key.id,
            "address_sealed": vault.seal_text(key, address.formatted(), "delivery.address"),
            "variables_sealed": variables,
            "recipient_domain": address.email.rpartition("@")[2].lower(),
            "status": QUEUED, "attempts": 0, "next_attempt_at": due,
            "created_at": now, "updated_at": now,
        })
    session.execute(Delivery.__table__.insert(), rows)
    doc = content.load(document)
    facts = content.facts(doc, storage_key=storage_key, size=request.size, tags=request.tags,
                          testmode=request.testmode)
    if request.recipient_variables is None:
        record_many(session, vault, account_id=domain.account_id, domain_id=domain.id,
                    facts=facts, event="accepted", timestamp=now,
                    recipients=[Recipient(r.email, subjects[normalize_address(r.email)])
                                for r in recipients])
    else:  # a batch: each copy's event names its own recipient and its own values
        copies = []
        for address in recipients:
            email = normalize_address(address.email)
            own = content.for_recipient(facts, doc, address.formatted(),
                                        request.recipient_variables.get(email, {}))
            copies.append((own, Recipient(address.email, subjects[email])))
        record_each(session, vault, account_id=domain.account_id, domain_id=domain.id,
                    event="accepted", copies=copies, timestamp=now)
    return Accepted(f"<{message_id}>", storage_key, len(recipients))


def reject(session: Session, vault: Vault, domain: Domain, fields: list[tuple[str, str]],
           reason: str, clock: Clock = SYSTEM_CLOCK) -> None:
    """Record a `rejected` event for a send refused after its domain was known, so the
    sender sees it in the logs; sealed under the first recipient named, if any."""
    values = [v for k, v in fields if k in ("to", "cc", "bcc")]
    named = valid_addresses(values)
    sender = next((v for k, v in fields if k == "from"), "")
    subject = next((v for k, v in fields if k == "subject"), "")
    facts = content.MessageFacts(
        storage_key="", message_id="",
        headers={"to": ", ".join(a.formatted() for a in named), "from": header_text(sender),
                 "subject": header_text(subject), "message-id": ""},
        attachments=[], size=0, tags=[v for k, v in fields if k == "o:tag"],
        user_variables={}, testmode=False)
    if named:
        email = named[0].email
        key = vault.subjects(session, domain.account_id, [email])[normalize_address(email)]
    else:
        email, key = "", vault.new_content_key(session, domain.account_id)
    record(session, vault, account_id=domain.account_id, domain_id=domain.id, facts=facts,
           event="rejected", recipient=Recipient(email, key), timestamp=clock.now(),
           extra={"reject": {"reason": reason, "description": ""}})
