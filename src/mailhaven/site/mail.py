"""The platform's own mail (sign-up confirmations, password resets, invitations): sent from
`Settings.system_from` through our own queue, by the platform's own account and domain.

The account and its domain are made on first use, in the caller's transaction: writers
take one lock (SQLite's write lock, a PostgreSQL advisory lock) and look again, so two
processes starting at once make one account. The domain is accepted from directly, as
privacy notices are, not through the send API's check that an account's domain is
verified: that check keeps accounts from posing as names they haven't proven, and this
name is the operator's by configuration (reserved for every account, `domains.reserved`).
`mailhaven site records` prints its DNS records (SPF, DKIM) for the operator to publish, so
that receivers can check what it signs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.addresses import mailboxes
from mailhaven.domains.models import Domain
from mailhaven.domains.reserved import system_domain
from mailhaven.domains.service import add_domain, is_domain_name, new_domain
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept
from mailhaven.services import Services
from mailhaven.site.models import Platform
from mailhaven.storage.base import new_id
from mailhaven.storage.db import one_writer_at_a_time

PLATFORM = "platform"  # the key of the one `platform` row
_CREATING = 7_734_214  # PostgreSQL advisory lock id: one creator of the platform at a time
NOT_A_DOMAIN = ("MAILHAVEN_SYSTEM_FROM ({value!r}) is not an address at a domain name: "
                "set it (or MAILHAVEN_HOSTNAME) to one, e.g. Mailhaven <no-reply@example.com>")


def send_system_mail(session: Session, services: Services, *, to: str, subject: str,
                     text: str) -> None:
    """Queue one plain-text service message to `to`, in the caller's transaction: it is
    sent once that commits. Never tracked, category transactional."""
    domain = platform_domain(session, services)
    request = build_request([("from", services.settings.system_from), ("to", to),
                             ("subject", subject), ("text", text),
                             ("o:category", "transactional"), ("o:tracking", "no")], [],
                            now=services.clock.now())
    accept(session, services.vault, domain, request, services.clock)


def platform_account(session: Session, services: Services) -> str:
    """The platform's own account id, made on first use."""
    return platform_domain(session, services).account_id


def existing_platform_account(session: Session) -> str | None:
    """The platform's account id if it was made (for readers, which make nothing)."""
    return session.scalar(select(Platform.account_id).where(Platform.key == PLATFORM))


def platform_domain(session: Session, services: Services) -> Domain:
    """The platform's sending domain (the domain of `system_from`), made on first use."""
    name = system_domain(services.settings)
    if not is_domain_name(name):
        raise ValueError(NOT_A_DOMAIN.format(value=services.settings.system_from))
    found = _find(session, name)
    if found is not None:
        return found
    one_writer_at_a_time(session, _CREATING)
    return _find(session, name) or _create(session, services, name)


def _find(session: Session, name: str) -> Domain | None:
    return session.scalar(select(Domain).join(Platform, Platform.account_id == Domain.account_id)
                          .where(Platform.key == PLATFORM, Domain.name == name))


def _create(session: Session, services: Services, name: str) -> Domain:
    """The account if there is none yet, and the domain. Its DKIM keys are made here, in
    the transaction, once in the life of the installation (or of a system_from)."""
    account_id = existing_platform_account(session)
    if account_id is None:
        account_id = _new_account(session, services)
    return add_domain(session, new_domain(services.vault, account_id, {"name": name},
                                          services.clock))


def _new_account(session: Session, services: Services) -> str:
    """An account like a customer's, holder "Mailhaven" at the system address, and no API
    key: nobody outside this process sends as the platform."""
    now = services.clock.now()
    account = Account(id=new_id(), region=services.region, created_at=now)
    session.add(account)
    session.flush()
    address = _address(services)
    holder = services.vault.subject(session, account.id, address)
    account.holder_key_id = holder.id
    account.name_sealed = services.vault.seal_text(holder, "Mailhaven", "account.name")
    account.email_sealed = services.vault.seal_text(holder, address, "account.email")
    session.add(Platform(key=PLATFORM, account_id=account.id, created_at=now))
    session.flush()
    return account.id


def _address(services: Services) -> str:
    """The bare address of `system_from` (checked to be at a domain name before)."""
    return next(mailboxes([services.settings.system_from]))[0].email
