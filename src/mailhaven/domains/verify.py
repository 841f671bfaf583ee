"""DNS verification: does the world publish the records a domain was given? (SPEC P2)"""

from __future__ import annotations

import asyncio
import json

import dns.asyncresolver
import dns.exception
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailhaven.domains import keys
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.domains.service import (
    CLAIMED,
    Expected,
    claimed_elsewhere,
    dkim_kind,
    expected_records,
    owned_domain,
)
from mailhaven.errors import BadRequest
from mailhaven.resolver import ABSENT, FAILED, make_resolver
from mailhaven.runner import PeriodicJob
from mailhaven.services import Services

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"


async def check(domain: Domain, hostname: str,
                resolver: dns.asyncresolver.Resolver) -> dict[str, dict]:
    """{kind: {"valid": valid|invalid|unknown, "cached": [what DNS answered]}}."""
    return {e.kind: await _check_one(e, hostname, resolver)
            for e in expected_records(domain, hostname)}


async def _check_one(expected: Expected, hostname: str,
                     resolver: dns.asyncresolver.Resolver) -> dict:
    try:
        answer = await resolver.resolve(expected.name, expected.record_type)
    except ABSENT:
        return {"valid": INVALID, "cached": []}
    except (*FAILED, dns.exception.DNSException):  # timeouts, and names DNS can't hold
        return {"valid": UNKNOWN, "cached": []}
    found = [_text(r, expected.record_type) for r in answer]
    return {"valid": VALID if any(_matches(expected, f, hostname) for f in found)
            else INVALID, "cached": found}


def _text(rdata: object, record_type: str) -> str:
    if record_type == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    if record_type == "MX":
        return str(rdata.exchange).rstrip(".")  # type: ignore[attr-defined]
    return str(rdata.target).rstrip(".")  # type: ignore[attr-defined]


def _matches(expected: Expected, found: str, hostname: str) -> bool:
    if expected.kind == "spf":
        terms = found.lower().split()
        return bool(terms) and terms[0] == "v=spf1" and f"a:{hostname.lower()}" in terms
    if expected.kind.startswith("dkim:"):
        want, got = _tags(expected.value), _tags(found)
        return (got.get("p") == want["p"]
                and got.get("k", "rsa").lower() == want.get("k", "rsa"))
    return found.lower() == hostname.lower()


def _tags(record: str) -> dict[str, str]:
    tags = (t.strip().partition("=") for t in record.split(";") if "=" in t)
    return {name.strip(): "".join(value.split()) for name, _, value in tags}


def apply(session: Session, domain: Domain, status: dict[str, dict], now: float,
          services: Services | None = None) -> None:
    """Store the result; a domain whose SPF record and signing keys' records check out is
    `active` (unless another account verified the name first, in any region of
    `services`' platform), and a pending key whose
    record checks out starts signing. When DNS did not answer for what signing depends
    on, what was known before stands."""
    domain.dns_checked_at = now
    keys.drop_retired(domain, now)
    required = ["spf", *(dkim_kind(k) for k in keys.signing(domain))]
    if any(status.get(k, {}).get("valid", UNKNOWN) == UNKNOWN for k in required):
        return  # (a key renamed or added since the check is unknown too: checked next time)
    domain.dns_status = json.dumps(status)
    keys.promote(domain, {k.selector for k in domain.dkim_keys
                          if status.get(dkim_kind(k), {}).get("valid") == VALID}, now)
    required = ["spf", *(dkim_kind(k) for k in keys.signing(domain))]
    sending_ok = all(status[k]["valid"] == VALID for k in required)
    if sending_ok and domain.state != ACTIVE_DOMAIN and claimed_elsewhere(session, domain,
                                                                          services):
        sending_ok = False
    domain.state = ACTIVE_DOMAIN if sending_ok else "unverified"


def to_check(session: Session, account_id: str, name: str,
             services: Services | None = None) -> Domain:
    """The account's domain a "verify now" checks (PUT …/verify): 400 when another account
    verified the name already, before any DNS lookup is made in vain."""
    domain = owned_domain(session, account_id, name)
    if claimed_elsewhere(session, domain, services):
        raise BadRequest(CLAIMED.format(name=domain.name))
    return domain


def store_check(session: Session, account_id: str, name: str, status: dict[str, dict],
                now: float, services: Services | None = None) -> Domain:
    """Store a "verify now" result (`check`'s) in the caller's write transaction; 400 when
    another account's copy of the name became active meanwhile."""
    current = owned_domain(session, account_id, name)
    claimed = BadRequest(CLAIMED.format(name=current.name))
    apply(session, current, status, now, services)
    try:
        session.flush()
    except IntegrityError as exc:  # another account's copy became active meanwhile
        raise claimed from exc
    if current.state != ACTIVE_DOMAIN and claimed_elsewhere(session, current, services):
        raise claimed  # verified elsewhere during the DNS check
    return current


class DomainChecker(PeriodicJob):
    """Re-checks each domain's records every INTERVAL seconds, so a record removed from DNS
    (or finally published) shows in the domain's state without anyone asking. Every minute,
    one process of those sharing the database checks the domains due."""

    name = "domain-checker"
    every = 60.0
    longest = 600.0  # a round is DNS lookups: a slow resolver makes it minutes at worst
    INTERVAL = 6 * 3600.0
    BATCH = 20

    def __init__(self, services: Services) -> None:
        super().__init__(services.db, services.clock)
        self.services = services
        self.resolver = make_resolver(services.settings.dns_nameserver)

    async def work(self) -> int:
        checked: set[str] = set()
        while not self.stopping():
            # A domain whose result could not be stored is due still: checked once a round.
            fresh = [d for d in await asyncio.to_thread(self._due) if d.id not in checked]
            for domain in fresh:
                status = await check(domain, self.services.settings.hostname, self.resolver)
                await asyncio.to_thread(self._store, domain.id, status)
                checked.add(domain.id)
            if len(fresh) < self.BATCH:
                break
        return len(checked) + await asyncio.to_thread(self._drop_retired)

    def _due(self) -> list[Domain]:
        cutoff = self.clock.now() - self.INTERVAL
        with self.db.sessions() as session:
            return list(session.scalars(
                select(Domain).where(or_(Domain.dns_checked_at.is_(None),
                                         Domain.dns_checked_at < cutoff))
                .order_by(Domain.dns_checked_at).limit(self.BATCH)))

    def _store(self, domain_id: str, status: dict[str, dict]) -> None:
        try:
            with self.db.transaction() as session:
                domain = session.get(Domain, domain_id, with_for_update=True)
                if domain is not None:
                    apply(session, domain, status, self.clock.now(), self.services)
        except IntegrityError:  # another account verified the name meanwhile: it is theirs
            pass  # (the next check finds it so and leaves this copy unverified)

    def _drop_retired(self) -> int:
        """Retired keys go once their week is up, whether or not their domain is due."""
        now = self.clock.now()
        with self.db.sessions() as session:
            due = keys.retired_due(session, now)
        if not due:  # the common case, without taking SQLite's write lock
            return 0
        with self.db.transaction() as session:
            return keys.delete_retired(session, due, now)
