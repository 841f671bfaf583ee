"""A data-subject request as it arrives (`POST /v1/privacy/requests`): its fields checked,
then filed for a recipient (counted against the form's limits, confirmed by a mailed link)
or, from an authenticated account, filed as verified and carried out at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailhaven.addresses import parse_addresses
from mailhaven.controls import service as controls
from mailhaven.domains.service import is_domain_name
from mailhaven.errors import BadRequest
from mailhaven.privacy import form, service
from mailhaven.privacy import requests as reqs
from mailhaven.services import Services

DOMAIN_REQUIRED = "domain is required: the domain name that sent you email"
GIVEN_FIELDS = ("name", "email", "new_email", "purpose", "lift")


def address(value: str | None, field: str = "email") -> str:
    """The one address in a field, or 400 naming the field."""
    found = parse_addresses([value or ""], field, limit=1) if value else []
    if not found:
        raise BadRequest(f"{field} must be an email address")
    return found[0].email


@dataclass(frozen=True)
class Asked:
    """A request's right and what the requester gave for it (an address, a correction, a
    purpose), checked."""

    right: str
    given: dict[str, str]


def asked(fields: dict[str, str]) -> Asked:
    right = fields.get("type", "")
    if right not in reqs.RIGHTS:
        raise BadRequest(f"type must be one of {', '.join(reqs.RIGHTS)}")
    given = {k: v for k, v in fields.items() if k in GIVEN_FIELDS}
    if given.get("purpose") and given["purpose"] not in controls.PURPOSES:
        raise BadRequest(f"purpose must be one of {', '.join(controls.PURPOSES)}")
    if given.get("new_email"):
        given["new_email"] = address(given["new_email"], "new_email")
    return Asked(right, given)


@dataclass(frozen=True)
class Recipient:
    """Who a recipient's own request is about, and the domain that mailed them."""

    email: str
    domain: str


def recipient(fields: dict[str, str]) -> Recipient:
    email = address(fields.get("email"))
    domain = (fields.get("domain") or "").strip().lower().removesuffix(".")
    if not is_domain_name(domain):
        raise BadRequest(DOMAIN_REQUIRED)
    return Recipient(email, domain)


def file_for_recipient(services: Services, request: Asked, who: Recipient, *,
                       client: str | None) -> None:
    """Counted against the form's limits, then opened and its link mailed; the caller
    answers the same either way (no list of our customers to probe)."""
    with services.db.transaction() as session:
        admitted = form.admit(session, services.vault, client=client, domain=who.domain,
                              email=who.email, now=services.clock.now())
    if admitted:
        form.file(services, right=request.right, email=who.email, domain_name=who.domain,
                  given=request.given)


def file_for_account(services: Services, account_id: str, request: Asked, *,
                     confirm: str | None) -> dict[str, Any]:
    """The account holder's own request, or a recipient's (`email`) relayed by the
    customer, who verified them: carried out at once; the request as shown."""
    given = dict(request.given)
    if given.get("email"):
        given["email"] = address(given["email"])
    ctx = service.Context.of(services, f"account:{account_id}")
    with services.db.transaction() as session:
        done = service.file_verified(session, ctx, account_id, request.right, given,
                                     confirm=confirm)
        return reqs.as_json(services.vault, session, done, ctx.now)
