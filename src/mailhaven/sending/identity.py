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
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.errors import Forbidden
from mailhaven.sending.folding import decode_words
from mailhaven.sending.request import SendRequest, mailbox_pairs, mime_fields, mime_head

DOMAIN, ANY = "domain", "any"
POLICIES = (DOMAIN, ANY)
# Fields that say who sends: the From of RFC 5322 3.6.2, the Sender, and their Resent- forms.
SENDER_FIELDS = frozenset({"from", "sender", "resent-from", "resent-sender"})
NOT_YOURS = ("{} is not a domain of this account: the From address must be in the "
             "organizational domain of {} or of another domain of this account")
UNREADABLE = "The {} header is not a list of valid addresses"


def check_sender(session: Session, domain: Domain, request: SendRequest, *,
                 require_verified: bool) -> None:
    """Refuse (403) a message that says it is from a domain its account hasn't got."""
    names = _sender_domains(request)
    if all(_aligned(name, domain.name) for name in names):
        return  # the usual case, without a query
    rows = session.execute(select(Domain.name, Domain.state).where(
        Domain.account_id == domain.account_id)).all()
    own = [name for name, state in rows if state == "active" or not require_verified]
    for name in names:
        if not any(_aligned(name, mine) for mine in (domain.name, *own)):
            raise Forbidden(NOT_YOURS.format(name, domain.name))


def _sender_domains(request: SendRequest) -> list[str]:
    """The domains of every address the message will say it is from."""
    fields = [(name.lower(), value) for name, value in request.headers]
    if request.mime is not None:
        fields += [(name, decode_words(value))
                   for name, value in mime_fields(mime_head(request.mime))]
    else:
        fields.append(("from", request.sender.formatted()))
    domains = []
    for name, value in fields:
        if name not in SENDER_FIELDS:
            continue
        pairs = mailbox_pairs(value)
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
    name = _ascii(name)
    return _suffixes().privatesuffix(name) or name


def _ascii(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
