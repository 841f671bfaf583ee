"""A website visitor's cookie choice, kept in the consent ledger (purpose "analytics").

The visitor is known by a random id only, never by name or address: 128 random bits in
hex, which the page keeps in the essential cookie `mh_visitor` beside `mh_consent` (the
choice itself, "essential" or "all"). Both are set when the visitor chooses, not before:
until then nothing identifies them. The ledger holds the id's blind index under the
platform's account — pseudonymous: it tells the choice of the browser holding the cookie,
and the id alone leads to nobody. The cookie lets a later choice (a withdrawal) land on
the same entry, and lets the visitor's browser show its own history.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy.orm import Session

from mailhaven.controls.service import ledger, record_consent
from mailhaven.errors import BadRequest
from mailhaven.services import Services
from mailhaven.site.mail import existing_platform_account, platform_account
from mailhaven.storage import notice_versions

VISITOR_COOKIE = "mh_visitor"
PURPOSE = "analytics"
SOURCE = "cookie-banner"
_VISITOR_ID = re.compile(r"[0-9a-f]{32}")


def new_visitor_id() -> str:
    """A fresh visitor id, for the `mh_visitor` cookie."""
    return secrets.token_hex(16)


def is_visitor_id(value: str) -> bool:
    """Whether a cookie's value is a visitor id we could have made (anything else is
    replaced by a new one, never recorded)."""
    return bool(_VISITOR_ID.fullmatch(value))


def _index(services: Services, account_id: str, visitor_id: str) -> str:
    if not is_visitor_id(visitor_id):
        raise BadRequest("not a visitor id")
    return services.vault.blind_index(account_id, f"visitor:{visitor_id}")


def record_cookie_choice(session: Session, services: Services, *, visitor_id: str,
                         analytics: bool) -> None:
    """Record the visitor's choice: analytics granted ("all") or not ("essential"), under
    the privacy notice in force."""
    account_id = platform_account(session, services)
    index = _index(services, account_id, visitor_id)
    record_consent(session, account_id, index, PURPOSE, granted=analytics, source=SOURCE,
                   notice_version=notice_in_force(services), now=services.clock.now())



def notice_in_force(services: Services) -> str:
    """The stored version in force, else the built-in one (`MAILHAVEN_NOTICE_VERSION`)."""
    return notice_versions.notice_in_force(services.main_db, services.clock.now(),
                                           services.settings.notice_version)

def cookie_choices(session: Session, services: Services, visitor_id: str) -> list[dict[str, Any]]:
    """The visitor's choices as the ledger holds them, oldest first (a reader: makes
    nothing)."""
    account_id = existing_platform_account(session)
    if account_id is None:
        return []
    return ledger(session, account_id, _index(services, account_id, visitor_id))
