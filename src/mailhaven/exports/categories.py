"""What an export holds, category by category, each opened through the vault for its subject."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import getaddresses
from typing import Any

from sqlalchemy import Select, false, func, or_, select

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.clock import iso8601
from mailhaven.controls.models import Consent
from mailhaven.controls.service import holder_index
from mailhaven.credentials.models import SmtpCredential
from mailhaven.credentials.service import open_login
from mailhaven.delivery.models import Delivery
from mailhaven.disclosures import service as disclosure_log
from mailhaven.domains.keys import published
from mailhaven.domains.models import Domain
from mailhaven.domains.service import Expected, dkim_expected, expected_records
from mailhaven.events.models import Event
from mailhaven.events.service import open_payload
from mailhaven.exports.registry import (
    ACCOUNT_HOLDER,
    RECIPIENT,
    Recipient,
    Scope,
    batches,
    register,
)
from mailhaven.inbound.models import InboundMessage
from mailhaven.lists.service import exported_memberships
from mailhaven.messages.models import Message
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.regions.transfers import transfers_of
from mailhaven.routes.service import exported as exported_routes
from mailhaven.suppressions.models import Suppression
from mailhaven.templates.service import exported as exported_templates
from mailhaven.users.service import account_users, user_details
from mailhaven.vault.service import normalize_address
from mailhaven.webhooks.models import Webhook


def iso(epoch: float | None) -> str | None:
    """ISO 8601 in UTC: what every tool reads, unlike Mailgun's RFC 2822 dates."""
    if epoch is None:
        return None
    return iso8601(epoch, zulu=True)


def _count(scope: Scope, query: Select) -> int:
    return scope.session.scalar(select(func.count()).select_from(query.subquery())) or 0


# -- the account holder -------------------------------------------------------------------
def _holder(scope: Scope) -> tuple[Account, str | None, str | None]:
    """The account, and its holder's name and email (None once the holder was erased)."""
    account = scope.session.get(Account, scope.account_id)
    assert account is not None  # the service checked
    key = scope.vault.keys(scope.session, [account.holder_key_id]).get(
        account.holder_key_id or "")
    if key is None:
        return account, None, None
    name = (scope.vault.open_text(key, account.name_sealed, "account.name")
            if account.name_sealed else None)
    email = (scope.vault.open_text(key, account.email_sealed, "account.email")
             if account.email_sealed else None)
    return account, name, email


@register("profile", columns=("account_id", "name", "email", "region", "created_at"),
          subjects=(ACCOUNT_HOLDER,))
def profile(scope: Scope) -> Iterator[dict]:
    account, name, email = _holder(scope)
    yield {"account_id": account.id, "name": name, "email": email, "region": account.region,
           "created_at": iso(account.created_at)}


@register("users", columns=("role", "name", "email", "created_at", "last_login_at"),
          subjects=(ACCOUNT_HOLDER,))
def users(scope: Scope) -> Iterator[dict]:
    """The account holder, then every user of the panel (an erased one is left out)."""
    account, name, email = _holder(scope)
    yield {"role": "account holder", "name": name, "email": email,
           "created_at": iso(account.created_at), "last_login_at": None}
    for user in account_users(scope.session, scope.account_id):
        details = user_details(scope.session, scope.vault, user)
        if details is not None:
            yield {"role": user.role, "name": details[0], "email": details[1],
                   "created_at": iso(user.created_at), "last_login_at": iso(user.last_login_at)}


def _dns_records(domain: Domain, hostname: str | None) -> list[dict]:
    """The records the domain publishes; without the MTA's host name only its DKIM records,
    which don't depend on it."""
    expected: list[Expected] = (expected_records(domain, hostname) if hostname else
                                [dkim_expected(domain, k) for k in published(domain)])
    checked = json.loads(domain.dns_status or "{}")
    return [{"purpose": e.kind, "record_type": e.record_type, "name": e.name, "value": e.value,
             "priority": e.priority, "valid": checked.get(e.kind, {}).get("valid", "unknown")}
            for e in expected]


@register("domains", columns=(
    "id", "name", "state", "created_at", "spam_action", "wildcard", "require_tls",
    "skip_verification", "web_prefix", "web_scheme", "tracking", "dns_records", "dkim_keys",
), subjects=(ACCOUNT_HOLDER,))
def domains(scope: Scope) -> Iterator[dict]:
    query = (select(Domain).where(Domain.account_id == scope.account_id)
             .order_by(Domain.created_at, Domain.name))
    for domain in scope.session.scalars(query):
        yield {
            "id": domain.id, "name": domain.name, "state": domain.state,
            "created_at": iso(domain.created_at), "spam_action": domain.spam_action,
            "wildcard": domain.wildcard, "require_tls": domain.require_tls,
            "skip_verification": domain.skip_verification, "web_prefix": domain.web_prefix,
            "web_scheme": domain.web_scheme,
            "tracking": {"opens": domain.track_opens, "opens_top": domain.track_opens_top,
                         "clicks": domain.track_clicks,
                         "unsubscribes": domain.track_unsubscribes,
                         "unsubscribe_html_footer": domain.unsubscribe_html_footer,
                         "unsubscribe_text_footer": domain.unsubscribe_text_footer},
            "dns_records": _dns_records(domain, scope.hostname),
            # What each key is, never the key: the private half stays sealed in the database.
            "dkim_keys": [{"selector": k.selector, "algorithm": k.algorithm,
                           "key_size": k.key_size, "state": k.state,
                           "created_at": iso(k.created_at),
                           "activated_at": iso(k.activated_at),
                           "retire_after": iso(k.retire_after)} for k in domain.dkim_keys],
        }


@register("api_keys", columns=("id", "hint", "description", "created_at", "revoked_at"),
          subjects=(ACCOUNT_HOLDER,))
def api_keys(scope: Scope) -> Iterator[dict]:
    query = (select(ApiKey).where(ApiKey.account_id == scope.account_id)
             .order_by(ApiKey.created_at, ApiKey.id))
    for key in scope.session.scalars(query):  # the digest stays behind: it authenticates
        yield {"id": key.id, "hint": key.hint, "description": key.description,
               "created_at": iso(key.created_at), "revoked_at": iso(key.revoked_at)}


# -- events: Mailgun's JSON, as the Events API shows it --------------------------------------
EVENT_COLUMNS = ("id", "event", "timestamp", "log-level", "recipient", "recipient-domain",
                 "severity", "reason", "message", "tags", "user-variables", "flags",
                 "envelope", "delivery-status", "storage", "method", "campaigns")


def _events(scope: Scope, *columns: Any) -> Select:
    # Rows whose key was erased can't be opened: they are not held in readable form.
    query = select(*(columns or (Event.id,))).where(Event.account_id == scope.account_id,
                                                    Event.key_id.is_not(None))
    if scope.recipient is not None:
        query = query.where(Event.recipient_index == scope.recipient.index)
    return query


@register("events", columns=EVENT_COLUMNS, open_ended=True,
          count=lambda scope: _count(scope, _events(scope)))
def events(scope: Scope) -> Iterator[dict]:
    # Just the columns open_payload reads: ORM objects would cost more than the decryption.
    query = _events(scope, Event.event_id, Event.key_id, Event.payload).order_by(Event.id)
    for rows in batches(scope.session, query):
        for doc in open_payload(scope.session, scope.vault, rows):
            yield doc if scope.recipient is None else _own_copy(doc, scope.recipient)


def _own_copy(doc: dict, recipient: Recipient) -> dict:
    """The event as its recipient may see it: the `To` header keeps their own address and
    drops the other recipients', whose data is not theirs to receive (GDPR Art. 15(4))."""
    headers = doc.get("message", {}).get("headers", {})
    if headers.get("to"):
        headers["to"] = ", ".join(
            f"{name} <{address}>" if name else address
            for name, address in getaddresses([headers["to"]])
            if normalize_address(address) == recipient.address)
    return doc


# -- messages: metadata only, never bodies ----------------------------------------------------
def _messages(scope: Scope) -> Select:
    recipients = (select(func.count(Delivery.id)).where(Delivery.message_id == Message.id)
                  .scalar_subquery())
    query = (select(Message.id, Domain.name, Message.created_at,
                    Message.size, Message.tags, recipients.label("recipients"))
             .join(Domain, Domain.id == Message.domain_id)
             .where(Message.account_id == scope.account_id))
    who = scope.recipient
    if who is not None:
        received = [Message.id.in_(select(Event.storage_key).where(
            Event.account_id == scope.account_id, Event.recipient_index == who.index))]
        if who.key is not None:
            received.append(Message.id.in_(select(Delivery.message_id).where(
                Delivery.account_id == scope.account_id, Delivery.subject_key_id == who.key.id)))
        query = query.where(or_(*received))
    return query


@register("messages", columns=("id", "message_id", "domain", "created_at", "size", "tags",
                               "recipients"),
          count=lambda scope: _count(scope, _messages(scope)))
def messages(scope: Scope) -> Iterator[dict]:
    query = _messages(scope).order_by(Message.created_at, Message.id)
    for rows in batches(scope.session, query):
        message_ids = _message_ids(scope, [row[0] for row in rows])
        for storage_key, domain, created, size, tags, recipients in rows:
            yield {"id": storage_key, "message_id": message_ids.get(storage_key),
                   "domain": domain,
                   "created_at": iso(created), "size": size, "tags": json.loads(tags),
                   "recipients": recipients}


def _message_ids(scope: Scope, storage_keys: list[str]) -> dict[str, str]:
    """The Message-IDs of these messages, opened from their copies (sealed there for each
    recipient, a recipient's export reads only theirs): none once every copy is erased."""
    query = select(Delivery.message_id, Delivery.subject_key_id, Delivery.message_id_sealed
                   ).where(Delivery.message_id.in_(storage_keys))
    who = scope.recipient
    if who is not None:
        if who.key is None:
            return {}
        query = query.where(Delivery.subject_key_id == who.key.id)
    rows = scope.session.execute(query).all()
    keys = scope.vault.keys(scope.session, (key_id for _, key_id, _ in rows))
    found: dict[str, str] = {}
    for storage_key, key_id, sealed in rows:
        key = keys.get(key_id or "")
        if storage_key not in found and key is not None and sealed is not None:
            found[storage_key] = scope.vault.open_text(key, sealed, "delivery.message_id")
    return found


# -- suppressions, and a recipient's queued and delivered copies -----------------------------
def _suppressions(scope: Scope) -> Select:
    query = (select(Suppression, Domain.name).join(Domain, Domain.id == Suppression.domain_id)
             .where(Suppression.account_id == scope.account_id,
                    Suppression.key_id.is_not(None)))
    if scope.recipient is not None:
        query = query.where(Suppression.value_index == scope.recipient.index)
    return query


@register("suppressions", columns=("domain", "list", "value", "value_type", "code", "detail",
                                   "tags", "created_at"),
          count=lambda scope: _count(scope, _suppressions(scope)))
def suppressions(scope: Scope) -> Iterator[dict]:
    vault = scope.vault
    for rows in batches(scope.session, _suppressions(scope).order_by(Suppression.id)):
        keys = vault.keys(scope.session, (row.key_id for row, _ in rows))
        for row, domain in rows:
            key = keys.get(row.key_id or "")
            if key is None:
                continue
            yield {"domain": domain, "list": row.kind,
                   "value": vault.open_text(key, row.value_sealed, "suppression"),
                   "value_type": row.value_type, "code": row.code,
                   "detail": (vault.open_text(key, row.detail_sealed, "suppression.detail")
                              if row.detail_sealed is not None else None),
                   "tags": json.loads(row.tags), "created_at": iso(row.created_at)}


def _deliveries(scope: Scope) -> Select:
    who = scope.recipient
    assert who is not None
    # Without a subject key, nothing of theirs can be read (`== None` would match the
    # copies of every erased recipient).
    mine = Delivery.subject_key_id == who.key.id if who.key is not None else false()
    return (select(Delivery, Domain.name).join(Domain, Domain.id == Delivery.domain_id)
            .where(Delivery.account_id == scope.account_id, mine))


@register("deliveries", columns=("id", "message", "domain", "address", "variables", "status",
                                 "attempts", "created_at", "updated_at", "next_attempt_at"),
          subjects=(RECIPIENT,), count=lambda scope: _count(scope, _deliveries(scope)))
def deliveries(scope: Scope) -> Iterator[dict]:
    who = scope.recipient
    if who is None or who.key is None:
        return
    vault, key = scope.vault, who.key
    for rows in batches(scope.session, _deliveries(scope).order_by(Delivery.id)):
        for row, domain in rows:
            variables = (json.loads(vault.open(key, row.variables_sealed, "delivery.variables"))
                         if row.variables_sealed is not None else None)
            yield {"id": row.id, "message": row.message_id, "domain": domain,
                   "address": vault.open_text(key, row.address_sealed, "delivery.address"),
                   "variables": variables, "status": row.status, "attempts": row.attempts,
                   "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
                   "next_attempt_at": iso(row.next_attempt_at)}


@register("webhooks", columns=("id", "domain", "url", "event_types", "description",
                               "created_at"), subjects=(ACCOUNT_HOLDER,))
def webhooks(scope: Scope) -> Iterator[dict]:
    query = (select(Webhook, Domain.name).outerjoin(Domain, Domain.id == Webhook.domain_id)
             .where(Webhook.account_id == scope.account_id)
             .order_by(Webhook.created_at, Webhook.id))
    for hook, domain in scope.session.execute(query):
        yield {"id": hook.id, "domain": domain, "url": hook.url,
               "event_types": json.loads(hook.event_types), "description": hook.description,
               "created_at": iso(hook.created_at)}


def _smtp_credentials(scope: Scope) -> Select:
    query = (select(SmtpCredential, Domain.name).join(Domain, Domain.id == SmtpCredential.domain_id)
             .where(SmtpCredential.account_id == scope.account_id))
    if scope.recipient is not None:
        query = query.where(SmtpCredential.login_index == scope.recipient.index)
    return query


@register("smtp_credentials", columns=("domain", "login", "created_at", "password_changed_at"))
def smtp_credentials(scope: Scope) -> Iterator[dict]:
    query = _smtp_credentials(scope).order_by(SmtpCredential.created_at, SmtpCredential.id)
    rows = scope.session.execute(query).all()
    keys = scope.vault.keys(scope.session, (row.key_id for row, _ in rows))
    for row, domain in rows:  # the password stays behind: only its hash is kept, to check it
        login = open_login(scope.vault, keys, row)
        if login is not None:
            yield {"domain": domain, "login": login, "created_at": iso(row.created_at),
                   "password_changed_at": iso(row.password_changed_at)}


@register("templates", columns=("id", "domain", "name", "description", "created_by",
                                "created_at", "versions"), subjects=(ACCOUNT_HOLDER,))
def templates(scope: Scope) -> Iterator[dict]:
    """The account's stored templates, each with its versions (content included)."""
    for row in exported_templates(scope.session, scope.vault, scope.account_id):
        yield {**row, "created_at": iso(row["created_at"])}


@register("routes", columns=("id", "priority", "description", "expression", "actions",
                             "created_at"), subjects=(ACCOUNT_HOLDER,))
def routes(scope: Scope) -> Iterator[dict]:
    """The account's routes, as written (they may name people: they are sealed at rest)."""
    for row in exported_routes(scope.session, scope.vault, scope.account_id):
        yield {**row, "created_at": iso(row["created_at"])}


@register("list_members", columns=("list", "address", "name", "subscribed", "vars",
                                  "created_at"))
def list_members(scope: Scope) -> Iterator[dict]:
    """Memberships of the account's mailing lists: a recipient's own, or all of them."""
    index = scope.recipient.index if scope.recipient is not None else None
    for row in exported_memberships(scope.session, scope.vault, scope.account_id, index):
        yield {**row, "created_at": iso(row["created_at"])}


# -- the privacy engine's own records: registered now, filled when their tables exist ------
@register("consents", columns=("purpose", "state", "notice_version", "source", "recorded_at"))
def consents(scope: Scope) -> Iterator[dict]:
    """The consent ledger (SPEC N5): one row per consent given or withdrawn."""
    for row in scope.session.scalars(select(Consent).where(
            Consent.account_id == scope.account_id,
            Consent.subject_index == _subject_index(scope)).order_by(Consent.at, Consent.id)):
        yield {"purpose": row.purpose, "state": "given" if row.granted else "withdrawn",
               "notice_version": row.notice_version, "source": row.source,
               "recorded_at": iso(row.at)}


def _subject_index(scope: Scope) -> str:
    return scope.recipient.index if scope.recipient else holder_index(scope.account_id)


@register("requests", columns=("id", "right", "state", "received_at", "due_at", "closed_at"))
def requests(scope: Scope) -> Iterator[dict]:
    """Data subject requests (SPEC N3) and their states."""
    for row in scope.session.scalars(select(PrivacyRequest).where(
            PrivacyRequest.account_id == scope.account_id,
            PrivacyRequest.subject_index == _subject_index(scope))
            .order_by(PrivacyRequest.received_at)):
        yield {"id": row.id, "right": row.right, "state": row.state,
               "received_at": iso(row.received_at), "due_at": iso(row.due_at),
               "closed_at": iso(row.completed_at) if row.completed_at else None}


DISCLOSURE_COLUMNS = ("recipient", "kind", "purpose", "data_categories", "legal_basis",
                      "disclosed_at", "until", "standing", "reference")


@register("disclosures", columns=DISCLOSURE_COLUMNS)
def disclosures(scope: Scope) -> Iterator[dict]:
    """Disclosures of the subject's data (SPEC N10): to an account holder every one of the
    account's, to a recipient those that named them; then the sub-processors that were
    standing recipients while the data was held (computed from the register)."""
    who = scope.recipient
    for row in disclosure_log.naming(scope.session, scope.account_id,
                                     who.index if who is not None else None):
        yield {"recipient": row.recipient, "kind": row.recipient_kind, "purpose": row.purpose,
               "data_categories": row.categories, "legal_basis": row.legal_basis,
               "disclosed_at": iso(row.at), "until": None, "standing": False,
               "reference": row.reference}
    now = scope.now
    for sub in disclosure_log.standing(scope.main, _held_since(scope, now), now):
        yield {"recipient": sub.name, "kind": "subprocessor", "purpose": sub.purpose,
               "data_categories": sub.categories, "legal_basis": "contract (Art. 28)",
               "disclosed_at": iso(sub.effective_at), "until": iso(sub.removed_at),
               "standing": True, "reference": None}


def _held_since(scope: Scope, now: float) -> float:
    """Since when the account (holder) or the platform (a recipient) has held the data."""
    who = scope.recipient
    if who is None:
        account = scope.session.get(Account, scope.account_id)
        return account.created_at if account is not None else now
    first = scope.session.scalar(select(func.min(Event.timestamp)).where(
        Event.account_id == scope.account_id, Event.recipient_index == who.index))
    held = [t for t in (first, who.key.created_at if who.key is not None else None)
            if t is not None]
    return min(held) if held else now


@register("transfers", columns=("from_region", "to_region", "data_categories", "purpose",
                                "actor", "transferred_at"), subjects=(ACCOUNT_HOLDER,))
def transfers(scope: Scope) -> Iterator[dict]:
    """The account's data read from outside its region (SPEC N11): the transfer log."""
    for row in transfers_of(scope.session, scope.account_id):
        yield {"from_region": row.from_region, "to_region": row.to_region,
               "data_categories": list(row.what), "purpose": row.purpose,
               "actor": row.actor, "transferred_at": iso(row.at)}


# -- mail received at the MX from or for the recipient (issue 13) ------------------------------
def _received(scope: Scope) -> Select:
    who = scope.recipient
    assert who is not None
    return (select(InboundMessage, Domain.name).join(Domain, Domain.id == InboundMessage.domain_id)
            .where(InboundMessage.account_id == scope.account_id,
                   or_(InboundMessage.recipient_index == who.index,
                       InboundMessage.sender_index == who.index,
                       InboundMessage.from_index == who.index)))


@register("received_mail", columns=("message", "domain", "role", "address", "spf", "dkim",
                                    "dmarc", "status", "received_at"),
          subjects=(RECIPIENT,), count=lambda scope: _count(scope, _received(scope)))
def received_mail(scope: Scope) -> Iterator[dict]:
    who = scope.recipient
    if who is None:
        return
    vault, key = scope.vault, who.key
    for rows in batches(scope.session, _received(scope).order_by(InboundMessage.id)):
        for row, domain in rows:
            if row.recipient_index == who.index:
                role, sealed, context = "recipient", row.recipient_sealed, "inbound.recipient"
            elif row.sender_index == who.index:
                role, sealed, context = "sender", row.sender_sealed, "inbound.sender"
            else:
                role, sealed, context = "from", None, ""
            opened = (vault.open_text(key, sealed, context)
                      if key is not None and sealed is not None else who.address)
            yield {"message": row.message_id, "domain": domain, "role": role,
                   "address": opened, "spf": row.spf, "dkim": row.dkim, "dmarc": row.dmarc,
                   "status": row.status, "received_at": iso(row.created_at)}
