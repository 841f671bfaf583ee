"""Create, find, list and delete domains; describe the DNS records they need."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailhaven.clock import SYSTEM_CLOCK, Clock, format_rfc2822
from mailhaven.domains.dkim import KEY_SIZES, generate_rsa
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.sending.request import flag
from mailhaven.storage.base import new_id
from mailhaven.vault import Vault

_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$"
)
_LABELS = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
SPAM_ACTIONS = ("disabled", "block", "tag")
WEB_SCHEMES = ("http", "https")
MAX_SKIP = 2**31 - 1  # far past any real list, and an OFFSET every database can take
MAX_LABEL = 63  # one DNS label; also the width of the selector and web_prefix columns



def create_domain(session: Session, vault: Vault, account_id: str, fields: dict[str, str],
                  clock: Clock = SYSTEM_CLOCK) -> Domain:
    return add_domain(session, new_domain(vault, account_id, fields, clock))


def new_domain(vault: Vault, account_id: str, fields: dict[str, str],
               clock: Clock = SYSTEM_CLOCK) -> Domain:
    """A validated domain with a fresh DKIM key, not yet stored: key generation takes up to
    a few hundred milliseconds, which must not be spent inside a write transaction."""
    name = (fields.get("name") or "").strip().lower().removesuffix(".")
    if not name:
        raise BadRequest("Missing mandatory parameter: name")
    if not _DOMAIN_RE.match(name) or name.rpartition(".")[2].isdigit():
        raise BadRequest(f"'{name}' is not a valid domain name")
    spam_action = fields.get("spam_action") or "disabled"
    if spam_action not in SPAM_ACTIONS:
        raise BadRequest("spam_action must be one of disabled, block, tag")
    web_scheme = fields.get("web_scheme") or "http"
    if web_scheme not in WEB_SCHEMES:
        raise BadRequest("web_scheme must be one of http, https")
    web_prefix = (fields.get("web_prefix") or "email").strip().lower()
    if len(web_prefix) > MAX_LABEL or not _LABELS.match(web_prefix):
        raise BadRequest(f"'{web_prefix}' is not a valid web_prefix")
    try:
        key_size = int(fields.get("dkim_key_size") or 2048)
    except ValueError:
        key_size = 0
    if key_size not in KEY_SIZES:
        raise BadRequest("dkim_key_size must be 1024 or 2048")
    selector = (fields.get("dkim_selector") or "mh" + datetime.fromtimestamp(
        clock.now(), UTC).strftime("%Y%m")).strip().lower()
    if len(selector) > MAX_LABEL or not _LABELS.match(selector):
        raise BadRequest(f"'{selector}' is not a valid dkim_selector")
    keys = generate_rsa(key_size)
    domain = Domain(
        id=new_id(), account_id=account_id, name=name, state="unverified",
        spam_action=spam_action, wildcard=flag(fields.get("wildcard")),
        require_tls=flag(fields.get("require_tls")),
        skip_verification=flag(fields.get("skip_verification")),
        web_prefix=web_prefix, web_scheme=web_scheme,
        dkim_selector=selector, dkim_key_size=key_size,
        dkim_public_key=keys.public_b64, created_at=clock.now(),
    )
    domain.dkim_private_key = vault.seal_secret(f"dkim:{domain.id}", keys.private_pem)
    return domain


def add_domain(session: Session, domain: Domain) -> Domain:
    taken = BadRequest(f"The domain name {domain.name} is already taken")
    if session.scalar(select(Domain.id).where(Domain.name == domain.name)):
        raise taken
    session.add(domain)
    try:
        session.flush()
    except IntegrityError as exc:  # created meanwhile by a concurrent request
        raise taken from exc
    return domain


def owned_domain(session: Session, account_id: str, name: str) -> Domain:
    """The account's domain by name; another account's domain is as absent as a missing one."""
    domain = session.scalar(select(Domain).where(
        Domain.name == name.strip().lower(), Domain.account_id == account_id))
    if domain is None:
        raise NotFound("Domain not found")
    return domain


def list_domains(session: Session, account_id: str, *, limit: int, skip: int,
                 state: str | None = None, search: str | None = None) -> tuple[int, list[Domain]]:
    query = select(Domain).where(Domain.account_id == account_id)
    if state:
        query = query.where(Domain.state == state)
    if search:
        query = query.where(Domain.name.contains(search.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Domain.created_at, Domain.name)
                            .offset(skip).limit(limit)).all()
    return total, list(items)


def delete_domain(session: Session, account_id: str, name: str) -> None:
    session.delete(owned_domain(session, account_id, name))


def dkim_private_key(vault: Vault, domain: Domain) -> bytes:
    return vault.open_secret(f"dkim:{domain.id}", domain.dkim_private_key)


# -- Mailgun's shapes -------------------------------------------------------------------
def domain_json(domain: Domain) -> dict:
    return {
        "id": domain.id,
        "name": domain.name,
        "state": domain.state,
        "type": "custom",
        "created_at": format_rfc2822(domain.created_at),
        "smtp_login": f"postmaster@{domain.name}",
        "spam_action": domain.spam_action,
        "require_tls": domain.require_tls,
        "skip_verification": domain.skip_verification,
        "web_prefix": domain.web_prefix,
        "web_scheme": domain.web_scheme,
        "wildcard": domain.wildcard,
        "is_disabled": False,
        "use_automatic_sender_security": False,
        "message_ttl": 259200,
    }


@dataclass(frozen=True)
class Expected:
    """A DNS record the domain must publish; `kind` names it in the verification status."""

    kind: str
    record_type: str
    name: str
    value: str
    priority: str | None = None


def expected_records(domain: Domain, hostname: str) -> list[Expected]:
    return [
        Expected("spf", "TXT", domain.name, f"v=spf1 a:{hostname} ~all"),
        Expected("dkim", "TXT", f"{domain.dkim_selector}._domainkey.{domain.name}",
                 f"k=rsa; p={domain.dkim_public_key}"),
        Expected("tracking", "CNAME", f"{domain.web_prefix}.{domain.name}", hostname),
        Expected("mx", "MX", domain.name, hostname, priority="10"),
    ]


def _record(domain: Domain, expected: Expected) -> dict:
    checked = json.loads(domain.dns_status or "{}").get(expected.kind, {})
    record = {"record_type": expected.record_type, "name": expected.name,
              "value": expected.value, "valid": checked.get("valid", "unknown"),
              "cached": checked.get("cached", []), "is_active": True}
    if expected.priority is not None:
        record["priority"] = expected.priority
    return record


def sending_dns_records(domain: Domain, hostname: str) -> list[dict]:
    return [_record(domain, e) for e in expected_records(domain, hostname) if e.kind != "mx"]


def receiving_dns_records(domain: Domain, hostname: str) -> list[dict]:
    return [_record(domain, e) for e in expected_records(domain, hostname) if e.kind == "mx"]


def domain_response(domain: Domain, hostname: str) -> dict:
    return {
        "domain": domain_json(domain),
        "receiving_dns_records": receiving_dns_records(domain, hostname),
        "sending_dns_records": sending_dns_records(domain, hostname),
    }
