"""Record events in Mailgun's JSON and read them back for the Events API."""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Protocol

from sqlalchemy.orm import Session

from mailhaven.clock import format_rfc2822
from mailhaven.controls.service import Limits
from mailhaven.events.models import Event
from mailhaven.messages.content import MessageFacts
from mailhaven.storage.base import table
from mailhaven.vault import Vault, VaultKey

log = logging.getLogger(__name__)

LOG_LEVELS = {"failed": "error", "rejected": "warn", "complained": "warn"}


@dataclass(frozen=True)
class Recipient:
    """A recipient as events see it: the address and the subject key that seals it."""

    email: str
    key: VaultKey
    limits: Limits | None = None  # restriction/objection, when the caller looked them up


@dataclass(frozen=True)
class Recorded:
    """Events just stored together, as their consumers (statistics, webhooks) hear of them:
    one per copy, in the order given."""

    account_id: str
    domain_id: str
    event: str
    timestamp: float
    copies: list[tuple[MessageFacts, Recipient]]
    documents: list[dict]  # each event's JSON, as stored
    indexes: list[str | None]  # each recipient's blind index (None: no recipient named)
    stats_kind: str | None  # the counter they add to, when not the event's own (`unique`)


Sink = Callable[[Session, Recorded], None]
_sinks: list[Sink] = []


def subscribe(sink: Sink) -> None:
    """Have `sink` hear of every event recorded in this process, inside the transaction that
    stores it (so a count or a webhook delivery is never lost nor made twice). Subscribed
    where the process is wired (`mailhaven.wiring`), never by the events' producers."""
    if sink not in _sinks:
        _sinks.append(sink)


def subscribed() -> list[Sink]:
    return list(_sinks)


def unsubscribe_all() -> list[Sink]:
    """Forget the sinks (tests, to check that an entry point wires them); returns them."""
    gone = list(_sinks)
    _sinks.clear()
    return gone


def new_event_id() -> str:
    return secrets.token_urlsafe(16)[:22]


def event_json(facts: MessageFacts, event: str, recipient: str, timestamp: float,
               extra: dict | None = None) -> dict:
    message: dict = {"headers": facts.headers, "attachments": facts.attachments,
                     "size": facts.size}
    if facts.scheduled_for is not None:  # Mailgun's string: the o:deliverytime asked for
        message["scheduled-for"] = format_rfc2822(facts.scheduled_for)
    data = {
        "id": new_event_id(),
        "event": event,
        "timestamp": timestamp,
        "log-level": LOG_LEVELS.get(event, "info"),
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2].lower(),
        "message": message,
        "tags": facts.tags,
        "campaigns": [],
        "user-variables": facts.user_variables,
        "flags": {"is-authenticated": True, "is-routed": False, "is-system-test": False,
                  "is-test-mode": facts.testmode, "is-delayed-bounce": False},
        "envelope": {"transport": "smtp", "targets": recipient,
                     "sender": parseaddr(facts.headers["from"])[1]},
        "method": facts.method,
    }
    if facts.storage_key:
        data["storage"] = {"key": facts.storage_key}
    if facts.template:
        data["template"] = facts.template
    if extra:
        data.update(extra)
    if event == "failed":
        data["log-level"] = "error" if data.get("severity") == "permanent" else "warn"
    return data


def record_many(session: Session, vault: Vault, *, account_id: str, domain_id: str,
                facts: MessageFacts, event: str, recipients: list[Recipient], timestamp: float,
                extra: dict | None = None, stats_kind: str | None = None) -> list[dict]:
    """Store one event per recipient, each sealed under that recipient's key."""
    return record_each(session, vault, account_id=account_id, domain_id=domain_id,
                       event=event, copies=[(facts, r) for r in recipients],
                       timestamp=timestamp, extra=extra, stats_kind=stats_kind)


def record_each(session: Session, vault: Vault, *, account_id: str, domain_id: str,
                event: str, copies: list[tuple[MessageFacts, Recipient]], timestamp: float,
                extra: dict | None = None, stats_kind: str | None = None,
                extras: Sequence[dict] | None = None) -> list[dict]:
    """Store one event per copy (its own facts, its recipient), in one INSERT.
    `extras`, if given, adds one copy's own fields (its delivery status) to its event.
    `stats_kind` overrides the counter the events add to (a first open is `unique`)."""
    rows, documents = [], []
    message_indexes = {m: vault.message_index(account_id, m)  # once per message, not copy
                       for m in {facts.message_id for facts, _ in copies} if m}
    for n, (facts, recipient) in enumerate(copies):
        fields = extra if extras is None else {**(extra or {}), **extras[n]}
        doc = event_json(facts, event, recipient.email, timestamp, fields)
        documents.append(doc)
        rows.append({
            "event_id": doc["id"], "account_id": account_id, "domain_id": domain_id,
            "storage_key": facts.storage_key or None, "event": event, "timestamp": timestamp,
            "severity": doc.get("severity"),
            "message_id_index": message_indexes.get(facts.message_id),
            "tags": json.dumps(facts.tags),
            "recipient_index": (vault.blind_index(account_id, recipient.email)
                                if recipient.email else None),
            "key_id": recipient.key.id,
            "payload": vault.seal(recipient.key, json.dumps(doc).encode(), doc["id"]),
        })
    if rows:
        session.execute(table(Event).insert(), rows)  # Core: no ORM bulk machinery
        recorded = Recorded(account_id, domain_id, event, timestamp, copies, documents,
                            [row["recipient_index"] for row in rows], stats_kind)
        if not _sinks:
            _unwired()
        for sink in _sinks:
            sink(session, recorded)
    return documents


@functools.cache
def _unwired() -> None:
    """Said once: an entry point that forgot `wiring.wire()` loses statistics and webhooks
    without any other sign."""
    log.warning("events are recorded with no sink subscribed: statistics and webhooks miss "
                "them (call mailhaven.wiring.wire() where the process starts)")


def record(session: Session, vault: Vault, *, account_id: str, domain_id: str,
           facts: MessageFacts, event: str, recipient: Recipient, timestamp: float,
           extra: dict | None = None, stats_kind: str | None = None) -> dict:
    return record_many(session, vault, account_id=account_id, domain_id=domain_id, facts=facts,
                       event=event, recipients=[recipient], timestamp=timestamp, extra=extra,
                       stats_kind=stats_kind)[0]


def with_storage_urls(documents: list[dict], base_url: str, domain_name: str) -> list[dict]:
    """Fill in `storage.url`, which depends on where the API is reached from."""
    for doc in (d for d in documents if "storage" in d):
        doc["storage"]["url"] = (f"{base_url.rstrip('/')}/v3/domains/{domain_name}/messages/"
                                 f"{doc['storage']['key']}")
    return documents


class SealedEvent(Protocol):
    """An event as stored, an ORM object or a Core row: what opening it needs."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def event_id(self) -> str: ...


def open_payload(session: Session, vault: Vault, rows: Sequence[SealedEvent]) -> list[dict]:
    """Decrypt event rows; an event whose key was erased is left out."""
    openers = vault.openers(session, (row.key_id for row in rows))
    documents = []
    for row in rows:
        opener = openers.get(row.key_id or "")
        if opener is not None:
            documents.append(json.loads(opener(row.payload, row.event_id)))
    return documents


# An event as a page reads it: (event id, key id, storage key, sealed payload).
StoredEvent = tuple[str, str | None, str | None, bytes]


def open_json(session: Session, vault: Vault, rows: Sequence[StoredEvent],
              messages_url: str) -> list[bytes]:
    """Each readable row's event JSON as it was sealed, not parsed: the items of an Events
    API page to splice into its body as they are (parsing and re-encoding 300 documents was
    most of a page's time). `storage.url` is filled in as `with_storage_urls` does, under
    `messages_url` (`.../v3/domains/{domain}/messages/`). An event whose key was erased is
    left out. Rows are tuples, read by position: a Row's attributes cost more than the
    rest of the loop."""
    openers = vault.openers(session, {key_id for _, key_id, _, _ in rows})
    url = _json_string(messages_url)[:-1]  # the url's JSON string, open for the key's
    documents = []
    for event_id, key_id, storage_key, payload in rows:
        opener = openers.get(key_id or "")
        if opener is not None:
            documents.append(_with_storage_url(opener(payload, event_id), storage_key, url,
                                               messages_url))
    return documents


def _json_string(value: str) -> bytes:
    """`json.dumps(value)`, quicker for the usual storage key (letters and digits)."""
    if value.isalnum() and value.isascii():
        return b'"%s"' % value.encode()
    return json.dumps(value).encode()


def _with_storage_url(raw: bytes, storage_key: str | None, url: bytes,
                      messages_url: str) -> bytes:
    """`raw` (an event's JSON as `record_each` or a redaction wrote it: `json.dumps`'
    separators) with `"url"` added to its `storage`; `url` is `messages_url` as an
    unfinished JSON string, to which the key's JSON string (without its opening quote) is
    added (escaped text joined is the escaped join).

    The event's storage object is found as its exact bytes, `, "storage": {"key": K}` with K
    the row's storage key, searched from the end (`event_json` puts it after the message and
    its user variables; only fields we make come after it). Where those bytes stand they
    can only be such an object: a quote inside a JSON string is escaped, so `, "` there would
    read `, \\"`. The last one is the event's own: one nested in a user variable would need
    the message's storage key, chosen after the message was given, and would come before.
    With any other `"storage": ` after it (a document of another shape), or none found, the
    document is parsed and re-encoded as before."""
    if storage_key is not None:
        key = _json_string(storage_key)
        found = raw.rfind(b', "storage": {"key": %s}' % key)
        at = found + 21 + len(key)  # the storage object's closing brace
        if found >= 0 and raw.find(b'"storage": ', at) < 0:
            return b'%s, "url": %s%s%s' % (raw[:at], url, key[1:], raw[at:])
    elif b'"storage": ' not in raw:
        return raw  # nothing to fill in (the usual case of an event with no message)
    doc = json.loads(raw)
    if isinstance(doc.get("storage"), dict) and "key" in doc["storage"]:
        doc["storage"]["url"] = messages_url + str(doc["storage"]["key"])
    return json.dumps(doc, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()
