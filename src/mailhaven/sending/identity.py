"""Sender identity: the From addresses an account may send as (MAILHAVEN_SENDER_POLICY)."""

# Mailgun accepts any From and leaves it to DMARC at the receiver; a domain without DMARC
# (or with p=none) can then be spoofed from this platform, another account's domains
# included, on the platform's own reputation. So by default a From (and a Sender, and a
# MIME message's own) must be aligned, in DMARC's relaxed sense (RFC 7489 3.1), with the
# sending domain or another domain of the same account (verified, where verification is
# required): in the same organizational domain, found with the Public Suffix List. Mailgun's
# usual set-up, sending as `news@example.com` through `mg.example.com`, works; a From at a
# public suffix (`com`, `co.uk`, `github.io`) or at someone else's organization does not.
# `any` is Mailgun's behaviour.

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mailhaven.addresses import mailbox_pairs, without_comments
from mailhaven.config import SENDER_POLICIES
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.errors import Forbidden
from mailhaven.messages.document import Document
from mailhaven.messages.mime import mime_fields, mime_head
from mailhaven.sending.request import SendRequest
from mailhaven.vault.service import canonical_domain

POLICIES = DOMAIN, ANY = SENDER_POLICIES
# Fields that say who sends: the From of RFC 5322 3.6.2, the Sender, and their Resent- forms.
SENDER_FIELDS = frozenset({"from", "sender", "resent-from", "resent-sender"})
NOT_YOURS = ("{} is not a domain of this account: the From address must be in the "
             "organizational domain of {} or of another domain of this account")
UNREADABLE = "The {} header is not a list of valid addresses"


def check_sender(session: Session, domain: Domain, request: SendRequest, *,
                 require_verified: bool) -> None:
    """Refuse (403) a message that says it is from a domain its account hasn't got, or one
    another account has verified closer to it."""
    check_domains(session, domain, _sender_domains(request.headers, request.mime,
                                                   request.sender.formatted()),
                  require_verified=require_verified)


def check_stored(session: Session, domain: Domain, doc: Document, *,
                 require_verified: bool) -> None:
    """`check_sender` for a stored message sent again: what it says about its sender is
    judged now, as a new send's is (the account may have lost the domain since)."""
    check_domains(session, domain, _sender_domains(
        doc.headers, None if doc.mime is None else doc.mime_bytes, doc.sender),
        require_verified=require_verified)


def check_domains(session: Session, domain: Domain, senders: list[str], *,
                  require_verified: bool, refusal: str = NOT_YOURS) -> None:
    """Refuse (403, `refusal` naming the domain) any of `senders` (domain names) not in the
    organizational domain of one of the account's domains, or owned closer by another
    account. For the From of a message, and for an SMTP envelope's sender."""
    names = {canonical_domain(name) for name in senders}
    mine = canonical_domain(domain.name)
    if names == {mine} and domain.state == ACTIVE_DOMAIN:
        return  # the usual case, without a query: a verified name is one account's
    # One query: the account's own domains, and those above the senders' that others verified.
    candidates = sorted({parent for name in names for parent in _parents(name)})
    rows = session.execute(select(Domain.name, Domain.state, Domain.account_id).where(or_(
        Domain.account_id == domain.account_id,
        and_(Domain.name.in_(candidates), Domain.state == ACTIVE_DOMAIN)))).all()
    own = {mine, *(canonical_domain(name) for name, state, account_id in rows
                   if account_id == domain.account_id
                   and (state == ACTIVE_DOMAIN or not require_verified))}
    claimed = {canonical_domain(name) for name, _, account_id in rows
               if account_id != domain.account_id}
    for name in sorted(names):
        if not any(_aligned(name, ours) for ours in own):
            raise Forbidden(refusal.format(name, domain.name))
        # Alignment is by organization; within one, the closest verified owner decides.
        if _closest(name, claimed) > _closest(name, own):
            raise Forbidden(refusal.format(name, domain.name))


def _parents(name: str) -> list[str]:
    """`name` and the domains above it, down to its organizational domain."""
    labels = name.split(".")
    organization = _organization(name)
    found = []
    for n in range(len(labels)):
        parent = ".".join(labels[n:])
        found.append(parent)
        if parent == organization:
            break
    return found


def _closest(name: str, domains: set[str]) -> int:
    """How many labels the most specific of `domains` that is `name` or above it has."""
    return max((len(parent.split(".")) for parent in _parents(name) if parent in domains),
               default=0)


def _sender_domains(headers: list[tuple[str, str]], mime: bytes | None,
                    sender: str) -> list[str]:
    """The domains of every address the message will say it is from (its h: fields, and its
    MIME head or else its From), read from the value as written: comments go, an encoded
    word is an atom of a name, never an address."""
    fields = [(name.lower(), value) for name, value in headers]
    if mime is not None:
        fields += mime_fields(mime_head(mime))
    else:
        fields.append(("from", sender))
    domains = []
    for name, value in fields:
        if name not in SENDER_FIELDS:
            continue
        bare = without_comments(value)
        pairs = None if bare is None else mailbox_pairs(bare)
        if pairs is None:
            raise Forbidden(UNREADABLE.format(name.title()))
        domains += [email.rpartition("@")[2] for _, email in pairs]
    return domains


def _aligned(name: str, domain: str) -> bool:
    """`name` and `domain` share their organizational domain (DMARC's relaxed alignment)."""
    return _organization(name) == _organization(domain)


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no network


def _organization(name: str) -> str:
    """The registrable domain `name` belongs to (`example.co.uk` for `mg.example.co.uk`); a
    public suffix stands for itself, and so matches no registrable domain."""
    name = canonical_domain(name)
    return _suffixes().privatesuffix(name) or name
