"""FastAPI dependencies: the services, the authenticated account; work on one of its domains."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from mailhaven.accounts.service import KeyOwner, account_for_digest, key_digest
from mailhaven.accounts.throttle import FailedLogins
from mailhaven.domains.models import Domain
from mailhaven.domains.service import owned_domain
from mailhaven.errors import Forbidden, TooManyRequests, Unauthorized
from mailhaven.http import client_network, in_thread
from mailhaven.services import Services

T = TypeVar("T")

INVALID_KEY = "Invalid private key"
TOO_MANY_FAILURES = "Too many failed login attempts: try again in a minute"
KEY_ROLE_REFUSED = "This API key's role ({role}) does not allow this request"
READS = frozenset({"GET", "HEAD"})
FULL_ROLES = frozenset({"admin", "developer"})
# POST endpoints that only read (Mailgun's analytics queries take their filters as a body).
READING_TAGS = frozenset({"analytics"})
# What a key of each limited role may change besides reading: routes by their OpenAPI tag.
CHANGES_ALLOWED = {"analyst": frozenset[str](), "billing": frozenset[str](),
                   "support": frozenset({"suppressions"})}


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:  # bad base64 (binascii.Error), non-ASCII text, bad UTF-8
        return None
    return password if user == "api" and password else None


async def current_account(request: Request, services: ServicesDep) -> str:
    api_key = _api_key(request)
    if api_key is None:
        raise Unauthorized(INVALID_KEY)

    digest = key_digest(api_key)
    owner = services.key_cache.get(digest)
    if owner is None:
        owner = await _look_up(request, services, digest)
        services.key_cache.put(digest, owner)
    if not key_allows(owner.role, request):
        raise Forbidden(KEY_ROLE_REFUSED.format(role=owner.role))
    request.state.account_id = owner.account_id
    return owner.account_id


def key_allows(role: str, request: Request) -> bool:
    """Whether a key of `role` may make this request: admin and developer keys anything;
    the others read, and change only what their role manages (CHANGES_ALLOWED)."""
    if role in FULL_ROLES or request.method in READS:
        return True
    allowed = CHANGES_ALLOWED.get(role, frozenset())
    route = request.scope.get("route")
    tags = set(getattr(route, "tags", None) or ())
    return bool(tags & (allowed | READING_TAGS))


async def _look_up(request: Request, services: Services, digest: str) -> KeyOwner:
    """The key's account; a wrong key counts against the client's network, which past the
    limit is answered 429 and looked up one key at a time."""
    def lookup() -> KeyOwner | None:
        with services.db.sessions() as session:
            return account_for_digest(session, digest)

    failures: FailedLogins = request.app.state.failed_logins
    network = client_network(request)
    if not failures.blocked(network):
        owner = await in_thread(lookup)
        if owner is None:
            failures.fail(network)
            raise Unauthorized(INVALID_KEY)
        return owner
    # A right key still works from a blocked network (an attacker failing there must not
    # lock out its users), but the network holds one of the shared database threads at most.
    async with failures.lock(network):
        owner = await in_thread(lookup)
    if owner is None:
        failures.fail(network)
        raise TooManyRequests(TOO_MANY_FAILURES)
    return owner


AccountDep = Annotated[str, Depends(current_account)]


async def on_domain(services: Services, account_id: str, domain_name: str,
                    work: Callable[[Session, Domain], T], *, write: bool = False) -> T:
    """Run `work` on the account's domain (404 for anyone else's) in a database thread: in
    a read session, or in one write transaction."""
    def run() -> T:
        with (services.db.transaction() if write else services.db.sessions()) as session:
            return work(session, owned_domain(session, account_id, domain_name))
    return await in_thread(run)
