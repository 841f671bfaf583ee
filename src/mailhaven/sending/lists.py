"""A send to a mailing list's address: the list's subscribed members take its place, each a
batch copy of its own with the member's vars as `%recipient.*%`, and the To header still
names the list. One query finds whether any `to` is a list; a send to none is unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy.orm import Session

from mailhaven.addresses import Address
from mailhaven.domains.models import Domain
from mailhaven.lists import service as lists
from mailhaven.lists.models import MailingList
from mailhaven.sending.request import SendRequest
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

UNSUBSCRIBE_VAR = "mailing_list_unsubscribe_url"
# Mailgun's list variables, written as the batch variables every copy is rendered with.
LIST_VARIABLES = {
    "%mailing_list_unsubscribe_url%": f"%recipient.{UNSUBSCRIBE_VAR}%",
    "%recipient_name%": "%recipient.recipient_name%",
    "%recipient_email%": "%recipient.recipient_email%",
}


def expand(session: Session, vault: Vault, domain: Domain, request: SendRequest, *,
           public_url: str, exclude: str | None = None,
           known: Mapping[str, MailingList] | None = None) -> int:
    """Put the subscribed members of the lists `request.to` names in their place (at most
    `lists.MAX_FANOUT` copies; `exclude`, a poster, gets none); the number of members
    added. Their copies are batch copies: the To header the request had is kept on each.
    `known`: the account's lists among these addresses and maybe others, looked up already
    (`lists.lists_named`, once for sends that share a transaction)."""
    if known is None:
        named = lists.lists_named(session, domain.account_id, (a.email for a in request.to))
    else:
        named = {email: known[email] for email in
                 (normalize_address(a.email) for a in request.to) if email in known}
    if not named:
        return 0
    original_to = list(request.to)
    keep = [a for a in request.to if normalize_address(a.email) not in named]
    seen = {normalize_address(a.email) for a in (*keep, *request.cc, *request.bcc)}
    if exclude:
        seen.add(normalize_address(exclude))
    batch = dict(request.recipient_variables or {})
    base = lists.unsubscribe_base(public_url, domain)
    tokens = vault.tokens
    members: list[Address] = []
    for address in dict.fromkeys(normalize_address(a.email) for a in original_to):
        if address not in named:
            continue
        room = lists.MAX_FANOUT - len(members)
        for member in lists.subscribed_members(session, vault, named[address], limit=room):
            email = normalize_address(member.address)
            if email in seen:
                continue
            seen.add(email)
            members.append(Address(member.name, member.address))
            batch[email] = {**member.vars, "recipient_name": member.name,
                            "recipient_email": member.address,
                            UNSUBSCRIBE_VAR: lists.unsubscribe_url(tokens, base, member.id)}
    request.to = keep
    request.bcc = [*request.bcc, *members]
    if request.mime is None and not any(n.lower() == "to" for n, _ in request.headers):
        request.headers = [*request.headers,
                           ("To", ", ".join(a.formatted() for a in original_to))]
    request.recipient_variables = batch
    _with_list_variables(request)
    return len(members)


def _sub(text: str | None) -> str | None:
    if text is None or "%" not in text:
        return text
    for name, written in LIST_VARIABLES.items():
        text = text.replace(name, written)
    return text


def _with_list_variables(request: SendRequest) -> None:
    """Mailgun's list variables in the body, subject, headers and `v:` values, as batch
    variables. (A MIME message's own body is sent as it is, as for batch variables.)"""
    request.text, request.html = _sub(request.text), _sub(request.html)
    request.amp_html = _sub(request.amp_html)
    request.subject = _sub(request.subject) or ""
    request.headers = [(n, _sub(v) or "") for n, v in request.headers]
    request.variables = {k: _sub(v) or "" for k, v in request.variables.items()}
    if request.stored_template is not None:
        request.stored_template = replace(request.stored_template,
                                          source=_sub(request.stored_template.source) or "")
