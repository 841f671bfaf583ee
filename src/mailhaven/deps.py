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
from mailhaven.users.service import may

T = TypeVar("T")

INVALID_KEY = "Invalid private key"
TOO_MANY_FAILURES = "Too many failed login attempts: try again in a minute"
KEY_ROLE_REFUSED = "This API key's role ({role}) does not allow this request"
# The panel permission (users.service.PERMISSIONS) an API request needs, so a key can do
# through the API what a user of its role can do in the panel, and no more. First by the
# route's method and path; else by its OpenAPI tag, for reads (GET, HEAD) and for changes.
# A route in neither table is refused to every key but an admin's (tests/accounts/
# test_key_roles.py checks that every authenticated route is in one).
ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    # what people's mail said: the stored messages and their attachments, the resend
    ("GET", "/v3/domains/{domain_name}/messages/{storage_key}"): "manage_sending",
    ("GET", "/v3/domains/{domain_name}/messages/{storage_key}/attachments/{n}"):
        "manage_sending",
    ("GET", "/v3/domains/{domain_name}/sending_queues"): "view",
    # the key that signs webhooks (whoever holds it can forge them) is an API key
    ("GET", "/v5/accounts/http_signing_key"): "manage_keys",
    ("POST", "/v5/accounts/http_signing_key"): "manage_keys",
    ("GET", "/v1/keys"): "manage_keys",
    ("POST", "/v1/keys"): "manage_keys",
    ("DELETE", "/v1/keys/{key_id}"): "manage_keys",
    ("GET", "/v1/admin/domains/{domain_name}/webhook_deliveries"): "logs",
    ("GET", "/v1/admin/domains/{domain_name}/route_posts"): "logs",
    # statistics: the totals are billing's too; per tag they are the logs' detail
    ("GET", "/v3/{domain_name}/stats/total"): "view",
    ("GET", "/v3/domains/{domain_name}/limits/tag"): "view",
    ("POST", "/v1/analytics/metrics"): "view",  # a query: its filters come as a body
    ("POST", "/v1/analytics/logs"): "logs",
    # the people's requests and consents; retention and the account are the Admin's
    ("POST", "/v1/privacy/requests/{request_id}/extend"): "privacy",
    ("POST", "/v1/privacy/requests/{request_id}/deny"): "privacy",
    ("POST", "/v1/privacy/consents"): "privacy",
    ("GET", "/v1/privacy/recipients/{address:path}"): "privacy",  # all held about someone
    ("DELETE", "/v1/privacy/recipients/{address:path}"): "privacy",
    ("GET", "/v1/privacy/retention"): "view",
    # the notice and its sub-processors are public; objecting (deletion) is the Admin's
    ("GET", "/v1/privacy/notices"): "view",
    ("GET", "/v1/privacy/notices/{version}"): "view",
    ("GET", "/v1/privacy/subprocessors"): "view",
    ("GET", "/v1/privacy/account"): "view",
}
# tag: (permission to read, permission to change)
TAG_PERMISSIONS: dict[str, tuple[str, str]] = {
    "domains": ("view", "manage_domains"),
    "tracking": ("view", "manage_domains"),
    "messages": ("manage_sending", "manage_sending"),
    "events": ("logs", "logs"),
    "stats": ("logs", "manage_sending"),
    "analytics": ("logs", "logs"),
    "suppressions": ("view", "manage_suppressions"),
    "webhooks": ("view", "manage_sending"),
    "credentials": ("view", "manage_sending"),
    "templates": ("view", "manage_sending"),
    "routes": ("view", "manage_sending"),
    "mailing lists": ("logs", "manage_sending"),  # members: people's addresses and names
    "privacy": ("privacy", "manage_account"),
}
READS = frozenset({"GET", "HEAD"})
ALL_ROUTES = "admin"  # the role whose keys may call a route neither table names


async def get_services(request: Request) -> Services:
    """The process's services. `async def`, though it does no I/O: FastAPI runs a plain
    `def` dependency in its thread pool, a thread hop on every request (~0.4 ms of CPU a send
    in issue 17's profile) for one attribute read; it must stay free of blocking work."""
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
        looked_up_at = services.key_cache.generation
        owner = await _look_up(request, services, digest)
        services.key_cache.put(digest, owner, looked_up_at=looked_up_at)
    if not key_allows(owner.role, request):
        raise Forbidden(KEY_ROLE_REFUSED.format(role=owner.role))
    request.state.account_id = owner.account_id
    request.state.key_role = owner.role
    return owner.account_id


def key_allows(role: str, request: Request) -> bool:
    """Whether a key of `role` may make this request: whether a user of that role has the
    panel permission the route needs (ROUTE_PERMISSIONS, TAG_PERMISSIONS)."""
    needed = required_permission(request.method, request.scope.get("route"))
    if needed is None:
        return role == ALL_ROUTES
    return may(role, needed)


def required_permission(method: str, route: object) -> str | None:
    """The permission a request of `method` to `route` needs; None for a route neither table
    names. Two dictionary look-ups: this runs on every API request."""
    path = getattr(route, "path", None)
    method = "GET" if method == "HEAD" else method
    if path is not None and (found := ROUTE_PERMISSIONS.get((method, path))) is not None:
        return found
    tags: list[object] = list(getattr(route, "tags", None) or ())
    if len(tags) != 1 or (by_tag := TAG_PERMISSIONS.get(str(tags[0]))) is None:
        return None
    return by_tag[0] if method in READS else by_tag[1]


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
        raise TooManyRequests(TOO_MANY_FAILURES, retry_after=failures.retry_after(network))
    return owner


AccountDep = Annotated[str, Depends(current_account)]


async def current_key_role(request: Request, _: AccountDep) -> str:
    """The calling key's role, for routes that grant no more than it (`/v1/keys`)."""
    return str(request.state.key_role)


KeyRoleDep = Annotated[str, Depends(current_key_role)]


async def on_domain(services: Services, account_id: str, domain_name: str,
                    work: Callable[[Session, Domain], T], *, write: bool = False) -> T:
    """Run `work` on the account's domain (404 for anyone else's) in a database thread: in
    a read session, or in one write transaction."""
    def run() -> T:
        with (services.db.transaction() if write else services.db.sessions()) as session:
            return work(session, owned_domain(session, account_id, domain_name))
    return await in_thread(run)
