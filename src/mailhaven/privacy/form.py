"""The recipient's request form (`POST /v1/privacy/requests` without an API key): its limits,
and the same work whether or not the domain named is a customer's.

Anyone may use it, so it is limited per client network, per domain and per mailbox, counted
in the database (every process of an installation shares the counts) before anything
costly is done. The limits are counted alike for a domain we don't have, and its request
is opened and mailed on a stand-in account that is then rolled back: neither the answer,
nor its timing, nor a limit tells who our customers are.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.domains.models import Domain
from mailhaven.domains.service import domain_named
from mailhaven.errors import TooManyRequests
from mailhaven.netpolicy import client_network
from mailhaven.privacy import service
from mailhaven.privacy.models import FormCounter
from mailhaven.privacy.notices import mail_subject
from mailhaven.regions import service as regions
from mailhaven.services import Services
from mailhaven.storage.base import new_id
from mailhaven.storage.db import insert_for
from mailhaven.vault import Vault
from mailhaven.vault.service import canonical_domain, canonical_mailbox

HOUR, DAY = 3600.0, 86400.0
# A person asks once or twice; a household or an office behind one address a few times.
PER_CLIENT_PER_HOUR = 10
# Far above what a customer's recipients file in a day, far below a flood of its mail.
PER_DOMAIN_PER_DAY = 100
# A subscriber's whole IPv6 site (a /48 holds 65,536 /64s): ten clients' worth.
PER_SITE_PER_HOUR = 100
IPV6_SITE_PREFIX = 48
# Links mailed to one mailbox from one domain a day, however it is spelt: the form bombs
# nobody's inbox, and requests naming other (made-up) domains can't use up a person's own.
PER_MAILBOX_PER_DAY = 3
MAX_FORM_BYTES = 64 * 1024  # the form's few short fields; read before anything is counted
KEPT = 2 * DAY  # counters outlive their window by this much, then go
CLIENT_LIMITED = "Too many privacy requests from your network: try again in an hour"
DOMAIN_LIMITED = "Too many privacy requests for this domain today: try again tomorrow"


def _hit(session: Session, vault: Vault, kind: str, value: str, window: float,
         now: float) -> int:
    """One more request in this value's current window; how many it has had."""
    start = now - now % window
    stmt = insert_for(session, FormCounter).values(
        bucket_index=vault.blind_index(f"privacy-form:{kind}", value), window_start=start,
        hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FormCounter.bucket_index, FormCounter.window_start],
        set_={"hits": FormCounter.hits + 1}).returning(FormCounter.hits)
    return session.execute(stmt).scalar_one()


def admit(session: Session, vault: Vault, *, client: str | None, domain: str, email: str,
          now: float) -> bool:
    """Count a request against its client network (and IPv6 site), domain and mailbox at
    that domain: 429 past the first limits; False past the mailbox's, where the answer
    stays the same but nothing is done (saying so would tell who asked about the address)."""
    # First, while this transaction holds no counter: concurrent purges can't deadlock.
    session.execute(delete(FormCounter).where(FormCounter.window_start < now - KEPT))
    if _hit(session, vault, "client", client_network(client), HOUR, now) \
            > PER_CLIENT_PER_HOUR:
        raise TooManyRequests(CLIENT_LIMITED)
    if ":" in (client or "") and _hit(
            session, vault, "site", client_network(client, IPV6_SITE_PREFIX), HOUR, now) \
            > PER_SITE_PER_HOUR:
        raise TooManyRequests(CLIENT_LIMITED)
    if _hit(session, vault, "domain", canonical_domain(domain), DAY, now) \
            > PER_DOMAIN_PER_DAY:
        raise TooManyRequests(DOMAIN_LIMITED)
    mailbox = f"{canonical_mailbox(email)} {canonical_domain(domain)}"
    return _hit(session, vault, "mailbox", mailbox, DAY, now) <= PER_MAILBOX_PER_DAY


def _region_holds(services: Services, domain_name: str) -> bool:
    """Whether this region answers for the name platform-wide: its copy is the verified one,
    or the only one (regions.for_domain). An unverified copy here while another region holds
    a copy of its own is not enough: the request could be about that region's mail."""
    platform = getattr(services, "platform", None)
    if platform is None or len(platform.regions) < 2:
        return True
    return regions.for_domain(platform, domain_name) is services


class _StandIn(Exception):
    """Rolls back the work done for a domain we don't have."""


def file(services: Services, *, right: str, email: str, domain_name: str,
         given: dict) -> None:
    """Open the request and mail its link from the domain. For a domain we don't have, the
    same work on a stand-in account and domain, then rolled back: nothing is kept, and the
    answer takes as long as for a customer's domain."""
    ctx = service.Context.of(services, "subject")
    ours = _region_holds(services, domain_name)
    try:
        with services.db.transaction() as session:
            domain = domain_named(session, domain_name,
                                  verified_only=services.settings.require_verified_domains)
            if not ours:
                domain = None
            stand_in = domain is None
            if domain is None:
                account_id = _stand_in(session, domain_name, ctx.now)
                domain = _domain(session, account_id, domain_name)  # loaded as a customer's is
                assert domain is not None
            _open_and_mail(services, session, ctx, domain, right, email, given)
            if stand_in:
                raise _StandIn
    except _StandIn:
        pass


def _domain(session: Session, account_id: str, name: str) -> Domain | None:
    return session.scalar(select(Domain).where(Domain.account_id == account_id,
                                               Domain.name == name)
                          .execution_options(populate_existing=True))


def _stand_in(session: Session, name: str, now: float) -> str:
    account = Account(id=new_id(), created_at=now)
    session.add_all([account, Domain(id=new_id(), account_id=account.id, name=name,
                                     created_at=now)])
    session.flush()
    return account.id


def _open_and_mail(services: Services, session: Session, ctx: service.Context,
                   domain: Domain, right: str, email: str, given: dict) -> None:
    index = services.vault.blind_index(domain.account_id, email)
    key = services.vault.subject(session, domain.account_id, email)
    opened = service.receive(
        session, ctx, account_id=domain.account_id, right=right, subject_type="recipient",
        subject_index=index, key=key, given={**given, "email": email, "domain": domain.name},
        verified=False)
    link = f"{services.settings.api_url}/v1/privacy/verify/{opened.token}"
    mail_subject(services, session, domain, email, "Confirm your privacy request",
                 f"Someone asked {domain.name} for: {right.replace('-', ' ')} of the data "
                 f"held about {email}.\n\nIf that was you, confirm here:\n{link}\n\n"
                 f"If it wasn't, ignore this message: nothing will happen.\n")

