"""Sender identity: the From addresses an account may send as (MAILHAVEN_SENDER_POLICY)."""

# Mailgun accepts any From and leaves it to DMARC at the receiver; a domain without DMARC
# (or with p=none) can then be spoofed from this platform, another account's domains
# included, on the platform's own reputation. So by default a From (and a Sender, and a
# MIME message's own) must be at the sending domain, a subdomain of it, or another domain of
# the same account (verified, where verification is required): what the account has shown
# it controls, as SES's verified identities and Postmark's sender signatures. Mailgun's
# usual set-up, sending as `news@example.com` through `mg.example.com`, needs `example.com`
# added to the account too. `any` is Mailgun's behaviour.

from __future__ import annotations

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
NOT_YOURS = ("{} is not a domain of this account: the From address must be at {}, a "
             "subdomain of it, or another domain of this account")
UNREADABLE = "The {} header is not a list of valid addresses"


def check_sender(session: Session, domain: Domain, request: SendRequest, *,
                 require_verified: bool) -> None:
    """Refuse (403) a message that says it is from a domain its account hasn't got."""
    names = _sender_domains(request)
    if all(_within(name, domain.name) for name in names):
        return  # the usual case, without a query
    rows = session.execute(select(Domain.name, Domain.state).where(
        Domain.account_id == domain.account_id)).all()
    own = [name for name, state in rows if state == "active" or not require_verified]
    for name in names:
        if not any(_within(name, mine) for mine in (domain.name, *own)):
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


def _within(name: str, domain: str) -> bool:
    """`name` is `domain` or one of its subdomains (in ASCII form, case aside)."""
    name, domain = _ascii(name), _ascii(domain)
    return name == domain or name.endswith("." + domain)


def _ascii(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
