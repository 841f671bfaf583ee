"""Create, find, list and delete domains; describe the DNS records they need."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from mailhaven.clock import SYSTEM_CLOCK, Clock, format_rfc2822
from mailhaven.domains import keys, options
from mailhaven.domains.dkim import (
    ED25519,
    DkimKeyPair,
    generate,
    generate_ed25519,
    generate_rsa,
    record_value,
)
from mailhaven.domains.keys import ACTIVE, LABELS, MAX_LABEL
from mailhaven.domains.models import ACTIVE_DOMAIN, DkimKey, Domain
from mailhaven.domains.reserved import is_reserved
from mailhaven.errors import BadRequest, NotFound
from mailhaven.forms import flag
from mailhaven.storage import revocations
from mailhaven.storage.base import new_id, table
from mailhaven.storage.revocations import Revoked
from mailhaven.vault import Vault

if TYPE_CHECKING:
    from mailhaven.services import Services

_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$"
)
SPAM_ACTIONS = ("disabled", "block", "tag")
WEB_SCHEMES = ("http", "https")
MAX_SKIP = 2**31 - 1  # far past any real list, and an OFFSET every database can take
TAKEN = "The domain name {name} is already taken"
RESERVED = "The domain name {name} is reserved: no account may add it"
CLAIMED = ("The domain name {name} has been verified by another account: only one account "
           "can verify a name")


def is_domain_name(name: str) -> bool:
    """A name a domain may have (lower-case, without the final dot)."""
    return bool(_DOMAIN_RE.match(name)) and not name.rpartition(".")[2].isdigit()


def create_domain(session: Session, vault: Vault, account_id: str, fields: dict[str, str],
                  clock: Clock = SYSTEM_CLOCK) -> Domain:
    return add_domain(session, new_domain(vault, account_id, fields, clock))


def new_domain(vault: Vault, account_id: str, fields: dict[str, str],
               clock: Clock = SYSTEM_CLOCK, *, reserved: Iterable[str] = ()) -> Domain:
    """A validated domain with fresh DKIM keys, not yet stored: key generation takes up to
    a few hundred milliseconds, which must not be spent inside a write transaction.
    `reserved` adds the operator's names (reserved.operator_names) to the providers'."""
    name = (fields.get("name") or "").strip().lower().removesuffix(".")
    if not name:
        raise BadRequest("Missing mandatory parameter: name")
    if not is_domain_name(name):
        raise BadRequest(f"'{name}' is not a valid domain name")
    if is_reserved(name, reserved):
        raise BadRequest(RESERVED.format(name=name))
    key_size = keys.key_size_field(fields.get("dkim_key_size"))
    algorithm = keys.algorithm_field(fields.get("dkim_algorithm"))
    now = clock.now()
    selector = keys.selector_field(fields.get("dkim_selector") or keys.default_selector(now))
    companion = keys.companion_selector(selector) if algorithm == ED25519 else None
    domain = Domain(id=new_id(), account_id=account_id, name=name, state="unverified",
                    created_at=now)
    update_settings(domain, {"spam_action": "disabled", "web_scheme": "http",
                             "web_prefix": "email", **fields})
    pairs: list[tuple[str, DkimKeyPair]] = [(selector, generate_rsa(key_size))]
    if companion is not None:  # Ed25519 signs beside RSA, never instead of it
        pairs.append((companion, generate_ed25519()))
    domain.dkim_keys = [keys.new_key(vault, domain.id, s, pair, ACTIVE, now)
                        for s, pair in pairs]
    return domain


def update_settings(domain: Domain, fields: dict[str, str]) -> Domain:
    """Apply the settings given in `fields` (create's and Mailgun's `PUT /v3/domains/{name}`);
    what is not given stays as it is."""
    if "spam_action" in fields:
        if fields["spam_action"] not in SPAM_ACTIONS:
            raise BadRequest("spam_action must be one of disabled, block, tag")
        domain.spam_action = fields["spam_action"]
    if "web_scheme" in fields:
        if fields["web_scheme"] not in WEB_SCHEMES:
            raise BadRequest("web_scheme must be one of http, https")
        domain.web_scheme = fields["web_scheme"]
    if "web_prefix" in fields:
        web_prefix = fields["web_prefix"].strip().lower()
        if len(web_prefix) > MAX_LABEL or not LABELS.match(web_prefix):
            raise BadRequest(f"'{web_prefix}' is not a valid web_prefix")
        domain.web_prefix = web_prefix
    for name in ("wildcard", "require_tls", "skip_verification"):
        if name in fields or getattr(domain, name) is None:
            setattr(domain, name, flag(fields.get(name)))
    options.apply(domain, fields)
    return domain


def add_domain(session: Session, domain: Domain, services: Services | None = None) -> Domain:
    """Store a new domain. A name is taken once an account has verified it (in any region
    of `services`' platform) or when this account has it already; an unverified copy in
    another account takes nothing, so adding a name first does not keep it from its owner."""
    taken = BadRequest(TAKEN.format(name=domain.name))
    if verified_in_another_region(services, domain.name) or session.scalar(select(Domain.id).where(
            Domain.name == domain.name, or_(Domain.account_id == domain.account_id,
                                            Domain.state == ACTIVE_DOMAIN)).limit(1)):
        raise taken
    session.add(domain)
    try:
        session.flush()
    except IntegrityError as exc:  # created meanwhile by a concurrent request
        raise taken from exc
    return domain


def claimed_elsewhere(session: Session, domain: Domain,
                      services: Services | None = None) -> bool:
    """Whether another account has verified this domain's name, in this database or in
    another region of `services`' platform: then this copy can't be."""
    return session.scalar(select(Domain.id).where(
        Domain.name == domain.name, Domain.id != domain.id,
        Domain.state == ACTIVE_DOMAIN).limit(1)) is not None \
        or verified_in_another_region(services, domain.name)


def verified_in_another_region(services: Services | None, name: str) -> bool:
    """Whether a region other than `services`' holds a verified copy of the name: one
    verified copy of a name on the whole platform (each database's unique index sees its
    own region only). None: a caller with one database."""
    platform = getattr(services, "platform", None)
    if services is None or platform is None:
        return False
    for other in platform.regions.values():
        if other.db is not services.db:
            with other.db.sessions() as session:
                if session.scalar(select(Domain.id).where(
                        Domain.name == name, Domain.state == ACTIVE_DOMAIN).limit(1)):
                    return True
    return False


def domain_named(session: Session, name: str, *, verified_only: bool) -> Domain | None:
    """The domain a name stands for where no account is given (a recipient's privacy
    request): the verified copy; else, unless `verified_only`, the only copy. Names held
    unverified by several accounts stand for none of them."""
    copies = list(session.scalars(select(Domain).where(Domain.name == name.strip().lower())
                                  .order_by(Domain.state != ACTIVE_DOMAIN).limit(2)))
    if copies and copies[0].state == ACTIVE_DOMAIN:
        return copies[0]
    return copies[0] if len(copies) == 1 and not verified_only else None


def owned_domain(session: Session, account_id: str, name: str, *,
                 lock: bool = False, with_keys: bool = True) -> Domain:
    """The account's domain by name; another account's domain is as absent as a missing one.
    `lock` makes changes to one domain's keys wait for each other (PostgreSQL's row lock;
    SQLite has one writer anyway). Without `with_keys` its DKIM keys are read only if used
    (a send does not: one query fewer on the hot path)."""
    query = select(Domain).where(
        Domain.name == name.strip().lower(), Domain.account_id == account_id)
    if not with_keys:
        query = query.options(lazyload(Domain.dkim_keys))
    domain = session.scalar(query.with_for_update() if lock else query)
    if domain is None:
        raise NotFound("Domain not found")
    return domain


def owned_domain_id(session: Session, account_id: str, name: str) -> str:
    """The id of the account's domain by name, as `owned_domain` finds it (404 for another
    account's), in one query of one column: for reads that need no more (an events page)."""
    domains = table(Domain).c  # Core columns: no ORM step around the statement
    found = session.scalar(select(domains.id).where(
        domains.name == name.strip().lower(), domains.account_id == account_id))
    if found is None:
        raise NotFound("Domain not found")
    return found


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


def names_by_account(session: Session) -> dict[str, list[str]]:
    """Every account's domain names, sorted: the operator's overview."""
    names: dict[str, list[str]] = {}
    for account_id, name in session.execute(select(Domain.account_id, Domain.name)
                                            .order_by(Domain.name)):
        names.setdefault(account_id, []).append(name)
    return names


def sole_holder(session: Session, name: str) -> str | None:
    """The account that added `name`, where the caller named none (a command line);
    unverified copies may be in several accounts, and then the caller must choose."""
    holders = session.scalars(select(Domain.account_id).where(
        Domain.name == name.strip().lower()).limit(2)).all()
    if len(holders) > 1:
        raise BadRequest(f"Several accounts have added {name}: name one with --account")
    return holders[0] if holders else None


DeletionHook = Callable[[Session, Domain], None]
_deletion_hooks: list[DeletionHook] = []


def on_delete(hook: DeletionHook) -> None:
    """Run `hook` in the transaction that deletes a domain, before the rows go (templates
    delete their content keys): packages above this one subscribe (`wiring`)."""
    if hook not in _deletion_hooks:
        _deletion_hooks.append(hook)


def delete_domain(session: Session, account_id: str, name: str) -> None:
    domain = owned_domain(session, account_id, name)
    for hook in _deletion_hooks:
        hook(session, domain)
    revocations.announce(session, Revoked("domain", domain.name))
    session.delete(domain)


# -- DKIM keys --------------------------------------------------------------------------
def rotation_key(fields: dict[str, str]) -> tuple[DkimKeyPair, str | None]:
    """The new key a rotation asks for (and its selector, if named), generated before the
    write transaction, as a domain's first keys are."""
    algorithm = keys.algorithm_field(fields.get("dkim_algorithm"))
    size = keys.key_size_field(fields.get("dkim_key_size"))
    selector = fields.get("dkim_selector")
    return generate(algorithm, size), keys.selector_field(selector) if selector else None


def rotate_dkim(session: Session, vault: Vault, account_id: str, name: str,
                pair: DkimKeyPair, selector: str | None,
                clock: Clock = SYSTEM_CLOCK) -> Domain:
    domain = owned_domain(session, account_id, name, lock=True)
    keys.rotate(session, vault, domain, pair, selector, clock.now())
    return domain


def change_dkim_selector(session: Session, account_id: str, name: str,
                         value: str | None) -> Domain:
    """Mailgun's PUT dkim_selector: without a value nothing changes."""
    domain = owned_domain(session, account_id, name, lock=True)
    if value:
        keys.rename_primary(domain, keys.selector_field(value))
    return domain


def dkim_keys_json(domain: Domain) -> list[dict]:
    """Each published key with its state and record (a Mailhaven extension; the record has
    the shape of Mailgun's `/v1/dkim/keys` items)."""
    return [{
        "signing_domain": domain.name,
        "selector": key.selector,
        "algorithm": key.algorithm,
        "key_size": key.key_size,
        "state": key.state,
        "created_at": format_rfc2822(key.created_at),
        "activated_at": _date(key.activated_at),
        "retire_after": _date(key.retire_after),
        "dns_record": _record(domain, dkim_expected(domain, key)),
    } for key in keys.published(domain)]


def _date(epoch: float | None) -> str | None:
    return None if epoch is None else format_rfc2822(epoch)


# -- Mailgun's shapes -------------------------------------------------------------------
def domain_json(domain: Domain, *, kept_for: int) -> dict:
    """`kept_for`: how long the account keeps message bodies, in seconds (its retention)."""
    return {
        "id": domain.id,
        "name": domain.name,
        "state": domain.state,
        "type": "custom",
        "created_at": format_rfc2822(domain.created_at),
        # As Mailgun: the postmaster login, whether or not it has a password yet (smtp.md).
        "smtp_login": f"postmaster@{domain.name}",
        "spam_action": domain.spam_action,
        "require_tls": domain.require_tls,
        "skip_verification": domain.skip_verification,
        "web_prefix": domain.web_prefix,
        "web_scheme": domain.web_scheme,
        "wildcard": domain.wildcard,
        "is_disabled": False,
        **options.domain_json(domain, kept_for),
    }


@dataclass(frozen=True)
class Expected:
    """A DNS record the domain must publish; `kind` names it in the verification status."""

    kind: str
    record_type: str
    name: str
    value: str
    priority: str | None = None


def dkim_expected(domain: Domain, key: DkimKey) -> Expected:
    return Expected(dkim_kind(key), "TXT", f"{key.selector}._domainkey.{domain.name}",
                    record_value(key.algorithm, key.public_key))


def dkim_kind(key: DkimKey) -> str:
    """The record's name in the verification status: renaming a selector makes its record
    one that was never checked."""
    return f"dkim:{key.selector}"


def expected_records(domain: Domain, hostname: str) -> list[Expected]:
    return [
        Expected("spf", "TXT", domain.name, f"v=spf1 a:{hostname} ~all"),
        *(dkim_expected(domain, key) for key in keys.published(domain)),
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


def domain_response(domain: Domain, hostname: str, *, kept_for: int) -> dict:
    return {
        "domain": domain_json(domain, kept_for=kept_for),
        "receiving_dns_records": receiving_dns_records(domain, hostname),
        "sending_dns_records": sending_dns_records(domain, hostname),
    }


def needing_dns_work(session: Session, account_id: str,
                     hostname: str) -> list[tuple[Domain, list[dict]]]:
    """The account's domains that are not verified or have a record that does not check
    out, each with those records (the overview's to-do list)."""
    found = []
    for domain in session.scalars(select(Domain).where(Domain.account_id == account_id)
                                  .order_by(Domain.name)):
        records = [r for r in sending_dns_records(domain, hostname) + receiving_dns_records(
            domain, hostname) if r["valid"] != "valid"]
        if domain.state != ACTIVE_DOMAIN or records:
            found.append((domain, records))
    return found


def domain_names(session: Session, account_id: str) -> dict[str, str]:
    """The account's domains, id → name, by name."""
    return {domain_id: name for domain_id, name in session.execute(
        select(Domain.id, Domain.name).where(Domain.account_id == account_id)
        .order_by(Domain.name))}
