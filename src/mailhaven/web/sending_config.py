"""What the panel's sending-configuration pages (suppressions, webhooks, templates, routes)
share: work in a database thread, the account's domains and the one a page is about."""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.domains.service import list_domains, owned_domain
from mailhaven.errors import NotFound
from mailhaven.web.core import PageRefused

T = TypeVar("T")
MAX_DOMAINS = 1000  # in a page's domain selector


def domain_names(session: Session, account_id: str) -> list[str]:
    _, rows = list_domains(session, account_id, limit=MAX_DOMAINS, skip=0)
    return [row.name for row in rows]


def owned(session: Session, account_id: str, name: str) -> Domain:
    """The account's domain; anyone else's (or none) is the 404 page."""
    try:
        return owned_domain(session, account_id, name)
    except NotFound:
        raise PageRefused(404, "There is nothing here.") from None


def chosen(session: Session, account_id: str, name: str) -> tuple[list[str], Domain | None]:
    """The account's domain names, and the one asked for (else the first; None: none)."""
    names = domain_names(session, account_id)
    if not name and not names:
        return names, None
    return names, owned(session, account_id, name or names[0])


def link(path: str, **query: str) -> str:
    given = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(given)}" if given else path
