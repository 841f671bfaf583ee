"""Accept a message: seal it, queue one delivery per recipient, emit `accepted` — one commit."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mailhaven.addresses import MAX_ADDRESS_CHARS, Address, mailboxes, valid_addresses
from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.delivery.models import QUEUED, Delivery
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.domains.service import owned_domain
from mailhaven.errors import Forbidden, MailhavenError, NotFound
from mailhaven.events.service import Recipient, record, record_each
from mailhaven.lists import service as lists
from mailhaven.messages import content
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.sending import identity
from mailhaven.sending import lists as list_sends
from mailhaven.sending.request import (
    MAX_SUBJECT_CHARS,
    Attachment,
    SendRequest,
    build_request,
    header_text,
)
from mailhaven.storage import queued
from mailhaven.storage.base import new_id, table
from mailhaven.storage.db import Database
from mailhaven.storage.group_commit import GroupCommit
from mailhaven.templates import service as templates
from mailhaven.vault import Vault
from mailhaven.vault.recognise import holds_address
from mailhaven.vault.service import Subjects, normalize_address


@dataclass(frozen=True)
class Accepted:
    id: str  # "<message-id>", as Mailgun returns it
    storage_key: str
    recipients: int


def new_message_id(domain: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    return f"{stamp}.{secrets.token_hex(8)}@{domain}"


@dataclass(frozen=True)
class SendAttempt:
    """One `POST /messages` as it arrived: who, to which domain, the form."""

    account_id: str
    domain_name: str
    fields: list[tuple[str, str]]
    files: list[tuple[str, Attachment]]
    mime: bool
    method: str = "http"  # "smtp" from the submission server


Outcome = Accepted | Exception
SEND_BATCH = 32  # sends per transaction, at most: a bound on how long SQLite's lock is held


def send(db: Database, vault: Vault, account_id: str, domain_name: str,
         fields: list[tuple[str, str]], files: list[tuple[str, Attachment]], *, mime: bool,
         clock: Clock = SYSTEM_CLOCK, require_verified: bool = False,
         sender_policy: str = identity.DOMAIN, public_url: str = "") -> Accepted:
    """Validate and accept one send request in one transaction; a refused request is
    committed as a `rejected` event before its error goes back to the client."""
    outcome, = send_all(db, vault, [SendAttempt(account_id, domain_name, fields, files, mime)],
                        clock=clock, require_verified=require_verified,
                        sender_policy=sender_policy, public_url=public_url)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def send_all(db: Database, vault: Vault, attempts: list[SendAttempt], *,
             clock: Clock = SYSTEM_CLOCK, require_verified: bool = False,
             sender_policy: str = identity.DOMAIN, public_url: str = "") -> list[Outcome]:
    """Send requests that arrived together, in one transaction: each gets its own outcome,
    a refused one its error (committed as a `rejected` event where its domain is known)."""
    with db.transaction() as session:
        return _send_in(session, vault, attempts, clock, require_verified, sender_policy,
                        public_url)


def group_commit(db: Database, vault: Vault, clock: Clock, *, require_verified: bool,
                 sender_policy: str = identity.DOMAIN,
                 public_url: str = "") -> GroupCommit[SendAttempt, Accepted]:
    """The send API's writer: concurrent sends of this process share transactions.
    `public_url`: where list-unsubscribe links point (tracking's base)."""
    return GroupCommit(lambda attempts: send_all(db, vault, attempts, clock=clock,
                                                 require_verified=require_verified,
                                                 sender_policy=sender_policy,
                                                 public_url=public_url),
                       max_batch=SEND_BATCH, name="sends")


def _send_in(session: Session, vault: Vault, attempts: list[SendAttempt], clock: Clock,
             require_verified: bool, sender_policy: str,
             public_url: str = "") -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(attempts)
    domains: dict[tuple[str, str], Domain | None] = {}
    built: list[tuple[int, Domain, SendRequest]] = []
    for n, attempt in enumerate(attempts):
        name = attempt.domain_name
        if (attempt.account_id, name) not in domains:
            try:
                domains[attempt.account_id, name] = owned_domain(
                    session, attempt.account_id, name, with_keys=False)
            except NotFound:
                domains[attempt.account_id, name] = None
        domain = domains[attempt.account_id, name]
        if domain is None:
            outcomes[n] = NotFound(f"Domain not found: {name}")
        elif not may_send(domain, require_verified=require_verified):
            outcomes[n] = not_allowed(domain)
        else:
            try:
                request = build_request(attempt.fields, attempt.files, mime=attempt.mime,
                                        now=clock.now())
            except MailhavenError as exc:
                _refused(session, vault, domain, attempt, exc, clock)
                outcomes[n] = exc
            else:
                request.method = attempt.method
                built.append((n, domain, request))
    # The mailing lists every send of the transaction names, one query per account.
    addresses: dict[str, list[str]] = {}
    for _, domain, request in built:
        addresses.setdefault(domain.account_id, []).extend(a.email for a in request.to)
    named = {account_id: lists.lists_named(session, account_id, emails)
             for account_id, emails in addresses.items()}
    ready: list[tuple[int, Domain, SendRequest]] = []
    for n, domain, request in built:
        try:
            if request.template is not None:
                _with_template(session, vault, domain, request)
            list_sends.expand(session, vault, domain, request, public_url=public_url,
                              known=named[domain.account_id])
            if sender_policy == identity.DOMAIN:
                identity.check_sender(session, domain, request,
                                      require_verified=require_verified)
        except MailhavenError as exc:
            _refused(session, vault, domain, attempts[n], exc, clock)
            outcomes[n] = exc
        else:
            ready.append((n, domain, request))
    accepted = accept_all(session, vault, [(domain, request) for _, domain, request in ready],
                          clock)
    for (n, _, _), outcome in zip(ready, accepted, strict=True):
        outcomes[n] = outcome
    return [o for o in outcomes if o is not None]


def _refused(session: Session, vault: Vault, domain: Domain, attempt: SendAttempt,
             exc: MailhavenError, clock: Clock) -> None:
    reject(session, vault, domain, attempt.fields, exc.message, clock, method=attempt.method)


def _with_template(session: Session, vault: Vault, domain: Domain,
                   request: SendRequest) -> None:
    """Find the template the send names (a 400 if there is none), keep a copy of it for
    the message, and take its From when the send has none: as Mailgun does, the domain's
    postmaster when neither has one."""
    choice = request.template
    assert choice is not None
    request.stored_template = templates.for_send(
        session, vault, domain, choice.name, choice.version, text=choice.text,
        variables=choice.variables)
    if request.mime is None and not request.sender.email:
        # The stored From was checked when the version was stored: one address at least.
        stored = request.stored_template.headers.get("From", "")
        request.sender = next((address for address, _ in mailboxes([stored])),
                              Address("", f"postmaster@{domain.name}"))


UNVERIFIED = "The domain is unverified and requires DNS configuration"


def may_send(domain: Domain, *, require_verified: bool) -> bool:
    """DNS proves the account owns the name; until then, where that is required, nobody
    sends as it."""
    return not require_verified or domain.state == ACTIVE_DOMAIN


def not_allowed(domain: Domain) -> Forbidden:
    name = domain.name
    return Forbidden(f"Domain {name} is not allowed to send: {UNVERIFIED}. Verify it with "
                     f"PUT /v4/domains/{name}/verify once the records in "
                     f"GET /v4/domains/{name} are published.")


@dataclass(frozen=True)
class Outgoing:
    """A message as it is accepted, whichever way it came (a send, a resend): its document,
    with its Message-ID and time of acceptance, who it goes to, and the options its row
    keeps."""

    domain: Domain
    document: Document
    recipients: list[Address]  # each once
    recipient_variables: dict[str, dict] | None  # a batch: each recipient's own values
    size: int
    tags: list[str]
    testmode: bool
    dkim: bool
    require_tls: bool
    skip_verification: bool
    source_id: str | None = None  # the received message this one copies (erasure follows)


def _outgoing(domain: Domain, request: SendRequest, now: float,
              source_id: str | None = None) -> Outgoing:
    message_id = request.message_id or new_message_id(domain.name, now)
    return Outgoing(
        domain, request.document(message_id=message_id, created_at=now),
        request.recipients, request.recipient_variables, request.size, request.tags,
        request.testmode, request.dkim if request.dkim is not None else True,
        request.require_tls or domain.require_tls,
        request.skip_verification or domain.skip_verification, source_id)


def accept(session: Session, vault: Vault, domain: Domain, request: SendRequest,
           clock: Clock = SYSTEM_CLOCK) -> Accepted:
    return accept_all(session, vault, [(domain, request)], clock)[0]


def accept_all(session: Session, vault: Vault, sends: list[tuple[Domain, SendRequest]],
               clock: Clock = SYSTEM_CLOCK) -> list[Accepted]:
    """Seal and queue these send requests, with their `accepted` events (`queue_all`)."""
    now = clock.now()
    return queue_all(session, vault, [_outgoing(d, r, now) for d, r in sends], now=now)


def queue_request(session: Session, vault: Vault, domain: Domain, request: SendRequest, *,
                  now: float, source_id: str | None = None) -> Accepted:
    """Seal and queue one request already checked (a list's copies of inbound mail, whose
    `source_id` is the received message's storage key)."""
    return queue_all(session, vault, [_outgoing(domain, request, now, source_id)], now=now)[0]


def queue_all(session: Session, vault: Vault, outgoing: list[Outgoing], *,
              now: float) -> list[Accepted]:
    """Seal and queue these messages: one INSERT per table for all of them (plain Core
    INSERTs, not the ORM's unit of work: this is the hot path, and nothing here needs the
    rows as objects afterwards), and their `accepted` events."""
    if not outgoing:
        return []
    content_keys = vault.new_content_keys(session, [o.domain.account_id for o in outgoing])
    messages, storage_keys = [], []
    for out, content_key in zip(outgoing, content_keys, strict=True):
        storage_key = new_id()
        domain = out.domain
        messages.append({
            "id": storage_key, "account_id": domain.account_id, "domain_id": domain.id,
            "content_key_id": content_key.id,
            "content_sealed": vault.seal(content_key, out.document.dump(),
                                         f"message:{storage_key}"),
            "kind": "mime" if out.document.mime is not None else "form", "size": out.size,
            "batch": out.recipient_variables is not None,
            "tags": json.dumps(out.tags), "testmode": out.testmode, "dkim": out.dkim,
            "require_tls": out.require_tls, "skip_verification": out.skip_verification,
            "created_at": now, "source_id": out.source_id,
        })
        storage_keys.append(storage_key)
    session.execute(table(Message).insert(), messages)

    addresses: dict[str, list[str]] = {}
    for out in outgoing:
        addresses.setdefault(out.domain.account_id, []).extend(r.email for r in out.recipients)
    subjects = {account_id: vault.subjects(session, account_id, emails)
                for account_id, emails in addresses.items()}
    deliveries = []
    copies: dict[tuple[str, str], list[tuple[content.MessageFacts, Recipient]]] = {}
    for out, storage_key in zip(outgoing, storage_keys, strict=True):
        keys = subjects[out.domain.account_id]
        deliveries += _deliveries(vault, out, storage_key, keys, now)
        copies.setdefault((out.domain.account_id, out.domain.id), []).extend(
            _accepted_copies(out, storage_key, keys))
    if deliveries:  # a send to an empty mailing list has none
        session.execute(table(Delivery).insert(), deliveries)
        queued.announce(session)  # other processes' workers wake at the commit
    for (account_id, domain_id), group in copies.items():
        record_each(session, vault, account_id=account_id, domain_id=domain_id,
                    event="accepted", copies=group, timestamp=now)
    return [Accepted(f"<{out.document.message_id}>", storage_key, len(out.recipients))
            for out, storage_key in zip(outgoing, storage_keys, strict=True)]


def _deliveries(vault: Vault, out: Outgoing, storage_key: str, keys: Subjects,
                now: float) -> list[dict]:
    """One queued copy per recipient, its address, batch variables and the Message-ID
    (which the client may have written: it outlives the body, for later events) sealed for
    them."""
    domain, message_id = out.domain, out.document.message_id
    due = max(now, out.document.deliverytime or now)
    rows = []
    for address in out.recipients:
        key = keys[address.email]
        variables = None
        if out.recipient_variables is not None:
            own = out.recipient_variables.get(normalize_address(address.email), {})
            variables = vault.seal(key, json.dumps(own).encode(), "delivery.variables")
        rows.append({
            "message_id": storage_key, "account_id": domain.account_id,
            "domain_id": domain.id, "subject_key_id": key.id,
            "address_sealed": vault.seal_text(key, address.formatted(), "delivery.address"),
            "variables_sealed": variables,
            "message_id_sealed": vault.seal_text(key, message_id, "delivery.message_id"),
            "status": QUEUED, "attempts": 0, "next_attempt_at": due,
            "created_at": now, "updated_at": now,
        })
    return rows


def _accepted_copies(out: Outgoing, storage_key: str,
                     keys: Subjects) -> list[tuple[content.MessageFacts, Recipient]]:
    """What each recipient's `accepted` event says: the message's facts, and in a batch
    send the recipient's own To and variables."""
    doc, batch = out.document, out.recipient_variables
    facts = content.facts(doc, storage_key=storage_key, size=out.size, tags=out.tags,
                          testmode=out.testmode)
    result = []
    for address in out.recipients:
        email = normalize_address(address.email)
        own = facts if batch is None else content.for_recipient(
            facts, doc, address.formatted(), batch.get(email, {}))
        result.append((own, Recipient(address.email, keys[address.email])))
    return result


def reject(session: Session, vault: Vault, domain: Domain, fields: list[tuple[str, str]],
           reason: str, clock: Clock = SYSTEM_CLOCK, *, method: str = "http") -> None:
    """Record a `rejected` event for a send refused after its domain was known, so the
    sender sees it in the logs; sealed under the first recipient named, if any."""
    values = [v for k, v in fields if k in ("to", "cc", "bcc")]
    named = valid_addresses(values)
    # What the request said, no more than a message may say (the refusal may be of its size).
    sender = next((v for k, v in fields if k == "from"), "")[:MAX_ADDRESS_CHARS]
    subject = next((v for k, v in fields if k == "subject"), "")[:MAX_SUBJECT_CHARS]
    facts = content.MessageFacts(
        storage_key="", message_id="",
        headers={"to": ", ".join(a.formatted() for a in named), "from": header_text(sender),
                 "subject": header_text(subject), "message-id": ""},
        # Only tags the send could have kept: one carrying an address stays out of the log.
        attachments=[], size=0,
        tags=[v for k, v in fields if k == "o:tag" and v and not holds_address(v)],
        user_variables={}, testmode=False, method=method)
    if named:
        email = named[0].email
        key = vault.subject(session, domain.account_id, email)
    else:
        email, key = "", vault.new_content_key(session, domain.account_id)
    record(session, vault, account_id=domain.account_id, domain_id=domain.id, facts=facts,
           event="rejected", recipient=Recipient(email, key), timestamp=clock.now(),
           extra={"reject": {"reason": reason, "description": ""}})
