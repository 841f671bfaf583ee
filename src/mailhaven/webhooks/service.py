"""Webhook settings (Mailgun's v3, v4 and v1 views of one table), the signing key, and the
fan-out of recorded events into the webhook queue."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.clock import rfc3339_seconds
from mailhaven.errors import BadRequest, NotFound
from mailhaven.events.service import Recorded
from mailhaven.storage.base import new_id, table
from mailhaven.vault import Vault
from mailhaven.vault.recognise import holds_address, kept_clear
from mailhaven.webhooks.models import Webhook, WebhookDelivery

NAMES = ("accepted", "delivered", "opened", "clicked", "unsubscribed", "complained",
         "permanent_fail", "temporary_fail")
MAX_URLS = 3  # per event type, as Mailgun
MAX_URL_CHARS = 2048  # what browsers and most servers accept in a request line
URL_SHOWN_CHARS = 100  # of a refused URL, in the error
SIGNING_KEY_LABEL = "webhook-signing-key"
MISSING = "Missing parameter '{name}'"  # Mailgun's words and body (mailgun.js issue #154)
# Mailgun refuses a v3 POST for a type that has URLs with a 400 whose text no SDK or issue
# records: ours says what to do instead.
EXISTS = ("Webhook '{name}' already exists: change its URLs with "
          "PUT /v3/domains/{domain}/webhooks/{name}")


def webhook_name(document: dict) -> str | None:
    """Which webhook an event fires: `failed` splits by severity; `rejected` fires none."""
    event = document["event"]
    if event == "failed":
        return f"{document.get('severity') or 'permanent'}_fail"
    return event if event in NAMES else None


def valid_url(url: str, *, key: str = "Reason") -> str:
    """A URL the sender can POST to, or a 400: a URL stored unusable would fail every event."""
    url = url.strip()
    problem = url_problem(url)
    if problem:
        shown = url if len(url) <= URL_SHOWN_CHARS else url[:URL_SHOWN_CHARS] + "…"
        raise BadRequest(f"{shown} is not a valid url: {problem}", key=key)
    return url


def url_problem(url: str) -> str | None:
    """Why `url` can't be a webhook target (None if it can): http(s), a host, a port in
    1–65535, no spaces or control characters, at most MAX_URL_CHARS, and parsed by httpx."""
    if len(url) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "spaces and control characters are not allowed"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it can't be parsed (check the host)"
    if holds_address(unquote(f"{parts.username or ''}:{parts.password or ''} {parts.path}"
                             f"?{parts.query}#{parts.fragment}")):
        return "it can't hold an email address (webhook URLs are kept in clear)"
    if parts.scheme not in ("http", "https"):
        return "invalid URL scheme (http or https)"
    if not parts.hostname:
        return "the host is missing"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        return "the port must be a number from 1 to 65535"
    try:
        host = httpx.URL(url).raw_host.decode("ascii")  # an IDN in its ASCII form
    except httpx.InvalidURL:
        return "it can't be parsed (check the host)"
    labels = host.removesuffix(".").split(".")
    if ":" not in host and (len(host) > 253 or not all(0 < len(label) < 64
                                                       for label in labels)):
        return "the host is not a valid name"
    return None


def valid_names(names: list[str], *, key: str = "Reason") -> list[str]:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise BadRequest(f"invalid webhook type {unknown[0]!r}; valid types are "
                         f"{', '.join(NAMES)}", key=key)
    if not names:
        raise BadRequest("event_types is required", key=key)
    return list(dict.fromkeys(names))


def types_of(hook: Webhook) -> list[str]:
    return json.loads(hook.event_types)


def _hooks(session: Session, account_id: str, domain_id: str | None) -> list[Webhook]:
    scope = (Webhook.domain_id == domain_id) if domain_id else Webhook.domain_id.is_(None)
    return list(session.scalars(select(Webhook).where(Webhook.account_id == account_id, scope)
                                .order_by(Webhook.created_at, Webhook.url)))


def urls_by_name(hooks: list[Webhook]) -> dict[str, dict]:
    """Mailgun's `{"webhooks": {name: {"urls": […]}}}` map; names with no URL are left out."""
    out: dict[str, dict] = {}
    for name in NAMES:
        urls = [h.url for h in hooks if name in types_of(h)]
        if urls:
            out[name] = {"urls": urls}
    return out


def domain_map(session: Session, account_id: str, domain_id: str) -> dict[str, dict]:
    return urls_by_name(_hooks(session, account_id, domain_id))


def _save(session: Session, account_id: str, domain_id: str | None, hooks: list[Webhook],
          url: str, names: list[str], now: float, description: str = "") -> Webhook | None:
    """Set `url`'s event types; a URL left with none is deleted."""
    hook = next((h for h in hooks if h.url == url), None)
    if hook is None and names:
        hook = Webhook(id=new_id(), account_id=account_id, domain_id=domain_id, url=url,
                       description=description, created_at=now)
        session.add(hook)
        hooks.append(hook)
    if hook is None:
        return None
    if not names:
        session.delete(hook)
        hooks.remove(hook)
        return None
    hook.event_types = json.dumps([n for n in NAMES if n in names])
    return hook


def _check_limit(hooks: list[Webhook], *, key: str) -> None:
    for name, entry in urls_by_name(hooks).items():
        if len(entry["urls"]) > MAX_URLS:
            raise BadRequest(f"Maximum of {MAX_URLS} urls per webhook type ({name})", key=key)


def set_urls(session: Session, account_id: str, domain_id: str, name: str, urls: list[str],
             now: float) -> list[str]:
    """v3: the URLs of one webhook type become exactly `urls`."""
    valid_names([name])
    urls = list(dict.fromkeys(valid_url(u) for u in urls))
    if not urls:
        raise BadRequest("url is required", key="Reason")
    hooks = _hooks(session, account_id, domain_id)
    for hook in list(hooks):
        if name in types_of(hook) and hook.url not in urls:
            _save(session, account_id, domain_id, hooks, hook.url,
                  [n for n in types_of(hook) if n != name], now)
    for url in urls:
        current = next((types_of(h) for h in hooks if h.url == url), [])
        _save(session, account_id, domain_id, hooks, url, [*current, name], now)
    _check_limit(hooks, key="Reason")
    session.flush()
    return urls


def create_urls(session: Session, account_id: str, domain_id: str, name: str,
                urls: list[str], now: float, *, domain_name: str) -> list[str]:
    """v3 POST: a type with no URLs gets `urls`; one that has URLs is refused, as Mailgun
    does (its PUT replaces them)."""
    valid_names([name])
    if name in domain_map(session, account_id, domain_id):
        raise BadRequest(EXISTS.format(name=name, domain=domain_name))
    return set_urls(session, account_id, domain_id, name, urls, now)


def remove_name(session: Session, account_id: str, domain_id: str, name: str,
                now: float) -> list[str]:
    """v3 DELETE: the type's URLs are removed and returned."""
    hooks = _hooks(session, account_id, domain_id)
    removed = [h.url for h in hooks if name in types_of(h)]
    if not removed:
        raise NotFound("Webhook not found")
    for url in removed:
        types = next(types_of(h) for h in hooks if h.url == url)
        _save(session, account_id, domain_id, hooks, url, [n for n in types if n != name], now)
    return removed


def add_url(session: Session, account_id: str, domain_id: str, url: str, names: list[str],
            now: float) -> None:
    """v4 POST: `url` also receives `names`; a type it already has is refused."""
    url, names = valid_url(url), valid_names(names)
    hooks = _hooks(session, account_id, domain_id)
    current = next((types_of(h) for h in hooks if h.url == url), [])
    for name in names:
        if name in current:
            raise BadRequest(f"Webhook for event type '{name}' with URL '{url}' already exists",
                             key="Reason")
    _save(session, account_id, domain_id, hooks, url, [*current, *names], now)
    _check_limit(hooks, key="Reason")


def replace_url(session: Session, account_id: str, domain_id: str, url: str,
                names: list[str], now: float) -> None:
    """v4 PUT: `url`'s event types become exactly `names`."""
    url, names = valid_url(url), valid_names(names)
    hooks = _hooks(session, account_id, domain_id)
    if not any(h.url == url for h in hooks):
        raise NotFound("Webhook not found", key="Description")
    _save(session, account_id, domain_id, hooks, url, names, now)
    _check_limit(hooks, key="Reason")


def delete_urls(session: Session, account_id: str, domain_id: str, urls: list[str],
                now: float) -> None:
    """v4 DELETE ?url=u1,u2: each URL leaves every type."""
    if not urls:
        raise BadRequest("url is required", key="Field")
    hooks = _hooks(session, account_id, domain_id)
    for url in urls:
        _save(session, account_id, domain_id, hooks, url, [], now)


# -- account-level webhooks (/v1/webhooks) -------------------------------------------------

def account_json(hook: Webhook) -> dict:
    return {"webhook_id": hook.id, "description": hook.description, "url": hook.url,
            "event_types": types_of(hook), "created_at": rfc3339_seconds(hook.created_at)}


def account_hooks(session: Session, account_id: str, ids: list[str] | None = None,
                  ) -> list[Webhook]:
    hooks = _hooks(session, account_id, None)
    return [h for h in hooks if ids is None or h.id in ids]


def account_hook(session: Session, account_id: str, webhook_id: str) -> Webhook:
    hooks = account_hooks(session, account_id, [webhook_id])
    if not hooks:
        raise NotFound("webhook not found", key="Description")
    return hooks[0]


def create_account_hook(session: Session, account_id: str, url: str, names: list[str],
                        description: str, now: float) -> Webhook:
    url, names = valid_url(url, key="message"), valid_names(names, key="message")
    hooks = _hooks(session, account_id, None)
    if any(h.url == url for h in hooks):
        raise BadRequest(f"webhook with URL '{url}' already exists", key="Description")
    hook = _save(session, account_id, None, hooks, url, names, now,
                 kept_clear(description[:200], "description"))
    _check_limit(hooks, key="message")
    assert hook is not None
    return hook


def update_account_hook(session: Session, account_id: str, webhook_id: str, url: str | None,
                        names: list[str], description: str | None) -> Webhook:
    hook = account_hook(session, account_id, webhook_id)
    if url is not None:
        hook.url = valid_url(url, key="message")
    if names:
        hook.event_types = json.dumps([n for n in NAMES if n in valid_names(names,
                                                                             key="message")])
    if description is not None:
        hook.description = kept_clear(description[:200], "description")
    _check_limit(_hooks(session, account_id, None), key="message")
    return hook


def delete_account_hooks(session: Session, account_id: str, ids: list[str] | None) -> int:
    hooks = account_hooks(session, account_id, ids)
    for hook in hooks:
        session.delete(hook)
    return len(hooks)


# -- signing ------------------------------------------------------------------------------

def signing_key(session: Session, vault: Vault, account_id: str, *,
                regenerate: bool = False) -> str:
    """The account's webhook signing key, made on first use (or anew when asked)."""
    account = session.get(Account, account_id, with_for_update=regenerate)
    if account is None:
        raise NotFound("account not found")
    if account.signing_key_sealed is not None and not regenerate:
        return vault.open_secret(f"{SIGNING_KEY_LABEL}:{account_id}",
                                 account.signing_key_sealed).decode()
    key = f"key-{secrets.token_hex(16)}"
    account.signing_key_sealed = vault.seal_secret(f"{SIGNING_KEY_LABEL}:{account_id}",
                                                   key.encode())
    return key


def sign(key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256 of timestamp + token."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify(key: str, timestamp: str, token: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, timestamp, token), signature)


def signed_body(key: str, document: dict, now: float) -> bytes:
    timestamp, token = str(int(now)), secrets.token_hex(25)
    return json.dumps({"signature": {"timestamp": timestamp, "token": token,
                                     "signature": sign(key, timestamp, token)},
                       "event-data": document}).encode()


# -- fan-out ------------------------------------------------------------------------------

def enqueue(session: Session, *, account_id: str, domain_id: str, documents: list[dict],
            now: float) -> int:
    """Queue one POST per (event, URL) for the domain's and the account's webhooks, in the
    transaction that records the events: an event is never recorded without its webhooks."""
    hooks = session.scalars(select(Webhook).where(
        Webhook.account_id == account_id,
        or_(Webhook.domain_id == domain_id, Webhook.domain_id.is_(None)))).all()
    if not hooks:
        return 0
    targets: dict[str, list[str]] = {}
    for hook in hooks:
        for name in types_of(hook):
            if hook.url not in targets.setdefault(name, []):
                targets[name].append(hook.url)  # one POST per URL even if set twice
    rows = [{"account_id": account_id, "domain_id": domain_id, "event_id": doc["id"],
             "webhook": webhook, "url": url, "next_attempt_at": now, "created_at": now,
             "updated_at": now, "status": "pending", "attempts": 0, "attempt_log": "[]"}
            for doc in documents if (webhook := webhook_name(doc))
            for url in targets.get(webhook, [])]
    if rows:
        session.execute(table(WebhookDelivery).insert(), rows)
    return len(rows)


def recent_deliveries(session: Session, account_id: str, domain_id: str, *, limit: int,
                      status: str | None = None) -> list[dict]:
    """What happened to recent webhook POSTs, newest first: every attempt is visible."""
    query = (select(WebhookDelivery)
             .where(WebhookDelivery.account_id == account_id,
                    WebhookDelivery.domain_id == domain_id)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
    if status:
        query = query.where(WebhookDelivery.status == status)
    return [{"id": row.id, "event-id": row.event_id, "webhook": row.webhook, "url": row.url,
             "status": row.status, "attempts": json.loads(row.attempt_log),
             "next-attempt-at": row.next_attempt_at if row.status == "pending" else None,
             "created-at": row.created_at}
            for row in session.scalars(query)]


def enqueue_recorded(session: Session, recorded: Recorded) -> None:
    """Webhooks' events sink: queue the POSTs for what was just recorded, in its transaction."""
    enqueue(session, account_id=recorded.account_id, domain_id=recorded.domain_id,
            documents=recorded.documents, now=recorded.timestamp)
