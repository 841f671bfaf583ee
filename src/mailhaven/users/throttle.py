"""Throttling of the ways in: failed logins and mailed links (sign-up, reset) counted per
address and per client network, in the database, so every process of an installation counts
them alike. Both are kept as blind indexes: nothing here can be read back.

An address with too many recent failed logins is refused outright (429), whatever the
password: that stops guessing one user's password or codes. A network with too many
failures is told so (429) on each further wrong password, but a right password still logs
in unless the address itself is blocked: an office behind one NAT address must not be
locked out by one stranger in it. Against spraying from one network (one guess at many
addresses) the long passwords with their deny list do the work; each address still has
its own limit.

Mailed links: past a few an hour for one address nothing more is mailed (the page answers
alike, so it tells nothing); past more from one network, the form is refused (429)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailhaven.errors import TooManyRequests
from mailhaven.users.models import AuthAttempt
from mailhaven.users.service import email_index
from mailhaven.vault import Vault

WINDOW = 15 * 60  # failed logins count this long
PER_ADDRESS, PER_NETWORK = 10, 30
MAIL_WINDOW = 3600  # mailed links count this long (and every row is gone after it)
MAILS_PER_ADDRESS, MAILS_PER_NETWORK = 3, 20
NETWORK_SCOPE = "panel-login-networks"
ADDRESS_BLOCKED = ("Too many failed logins for this address. Wait {minutes} minutes, or reset "
                   "your password with the link below.")
NETWORK_BLOCKED = ("Too many failed logins from your network. Wait {minutes} minutes before "
                   "trying again.")
MAILS_REFUSED = ("Too many sign-ups and password resets from your network: please try again "
                 "in an hour.")
LOGIN, MAIL, INVITE = "login", "mail", "invite"
INVITES_PER_ACCOUNT = 20  # an hour
ACCOUNT_SCOPE = "panel-invite-accounts"
INVITES_REFUSED = "Too many invitations from this account: please try again in an hour."


@dataclass(frozen=True)
class Who:
    """Whom an attempt is counted for: blind indexes, never the address in clear."""

    address_index: str
    network_index: str


@dataclass(frozen=True)
class Standing:
    address_blocked: bool
    network_blocked: bool
    minutes: int  # until the oldest counted failure leaves the window


def who(vault: Vault, email: str, network: str) -> Who:
    return Who(email_index(vault, email), network_index(vault, network))


def network_index(vault: Vault, network: str) -> str:
    return vault.blind_index(NETWORK_SCOPE, network)


def _counts(session: Session, kind: str, attempt: Who,
            since: float) -> tuple[int, int, float | None]:
    """(by address, by network, the oldest counted) of `kind` since `since`."""
    recent = (AuthAttempt.kind == kind, AuthAttempt.at > since)
    by_address, oldest_a = session.execute(select(func.count(), func.min(AuthAttempt.at)).where(
        AuthAttempt.address_index == attempt.address_index, *recent)).one()
    by_network, oldest_n = session.execute(select(func.count(), func.min(AuthAttempt.at)).where(
        AuthAttempt.network_index == attempt.network_index, *recent)).one()
    oldest = min((t for t in (oldest_a, oldest_n) if t is not None), default=None)
    return int(by_address), int(by_network), oldest


def standing(session: Session, attempt: Who, *, now: float) -> Standing:
    by_address, by_network, oldest = _counts(session, LOGIN, attempt, now - WINDOW)
    minutes = max(1, int(((oldest or now) + WINDOW - now) // 60) + 1)
    return Standing(by_address >= PER_ADDRESS, by_network >= PER_NETWORK, minutes)


def record_failure(session: Session, attempt: Who, *, now: float) -> None:
    _record(session, LOGIN, attempt, now)


def clear_address(session: Session, address_index: str) -> None:
    """The address's failed logins forgotten: its owner just proved who they are."""
    session.execute(delete(AuthAttempt).where(AuthAttempt.address_index == address_index,
                                              AuthAttempt.kind == LOGIN))


def admit_mail(session: Session, attempt: Who, *, now: float) -> bool:
    """Counts one link to mail: TooManyRequests past the network's limit; False past the
    address's (mail nothing, answer alike)."""
    by_address, by_network, _ = _counts(session, MAIL, attempt, now - MAIL_WINDOW)
    if by_network >= MAILS_PER_NETWORK:
        raise TooManyRequests(MAILS_REFUSED)
    if by_address >= MAILS_PER_ADDRESS:
        return False
    _record(session, MAIL, attempt, now)
    return True


def admit_invitation(session: Session, vault: Vault, account_id: str, email: str, *,
                     now: float) -> None:
    """Counts one invitation mailed by the account: TooManyRequests past its hourly limit
    (counted like mailed links, under the account's blind index)."""
    account = vault.blind_index(ACCOUNT_SCOPE, account_id)
    sent = session.scalar(select(func.count()).select_from(AuthAttempt).where(
        AuthAttempt.kind == INVITE, AuthAttempt.network_index == account,
        AuthAttempt.at > now - MAIL_WINDOW)) or 0
    if sent >= INVITES_PER_ACCOUNT:
        raise TooManyRequests(INVITES_REFUSED)
    _record(session, INVITE, Who(email_index(vault, email), account), now)


def purge(session: Session, *, now: float) -> int:
    """Attempts past every window (each new one purges too; for the scheduler, beside
    `sessions.purge_expired`, so a quiet installation keeps none past the hour)."""
    result = session.execute(delete(AuthAttempt).where(AuthAttempt.at <= now - MAIL_WINDOW))
    return int(getattr(result, "rowcount", 0) or 0)


def _record(session: Session, kind: str, attempt: Who, now: float) -> None:
    purge(session, now=now)
    session.add(AuthAttempt(kind=kind, address_index=attempt.address_index,
                            network_index=attempt.network_index, at=now))
