"""Throttling of the ways in: failed logins and mailed links (sign-up, reset) counted per
address and per client network, in the database, so every process of an installation counts
them alike. Both are kept as blind indexes: nothing here can be read back.

An address with too many recent failed logins is refused outright (429), whatever the
password: that stops guessing one user's password or codes. A network with too many
failures is told so (429) on each further wrong password, but a right password still logs
in unless the address itself is blocked: an office behind one NAT address must not be
locked out by one stranger in it. Against spraying from one network (one guess at many
addresses) the long passwords with their deny list do the work; each address still has
its own limit. That right password still costs an argon2id check, so a blocked network
gets few of them: BLOCKED_CHECKS_PER_MINUTE wrong passwords a minute, at most
BLOCKED_IN_FLIGHT at once in a process; past either, it is refused before any hashing.

Mailed links: past a few an hour for one address nothing more is mailed (the page answers
alike, so it tells nothing); past more from one network, the form is refused (429)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
LOGIN_BLOCKED = "login_blocked"  # a failed login from a network that was blocked already
BLOCKED_CHECKS_PER_MINUTE, BLOCKED_IN_FLIGHT = 5, 2
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
    network_busy: bool = False  # blocked, and past its checks for this minute

    @property
    def checks_password(self) -> bool:
        """Whether a password may be checked at all (hashing costs)."""
        return not self.address_blocked and not self.network_busy


def who(vault: Vault, email: str, network: str) -> Who:
    return Who(email_index(vault, email), network_index(vault, network))


def network_index(vault: Vault, network: str) -> str:
    return vault.blind_index(NETWORK_SCOPE, network)


def _counts(session: Session, kind: str, attempt: Who,
            since: float) -> tuple[int, int, float | None]:
    """(by address, by network, the oldest counted) of `kind` since `since`."""
    kinds = (LOGIN, LOGIN_BLOCKED) if kind == LOGIN else (kind,)
    recent = (AuthAttempt.kind.in_(kinds), AuthAttempt.at > since)
    by_address, oldest_a = session.execute(select(func.count(), func.min(AuthAttempt.at)).where(
        AuthAttempt.address_index == attempt.address_index, *recent)).one()
    by_network, oldest_n = session.execute(select(func.count(), func.min(AuthAttempt.at)).where(
        AuthAttempt.network_index == attempt.network_index, *recent)).one()
    oldest = min((t for t in (oldest_a, oldest_n) if t is not None), default=None)
    return int(by_address), int(by_network), oldest


def standing(session: Session, attempt: Who, *, now: float) -> Standing:
    by_address, by_network, oldest = _counts(session, LOGIN, attempt, now - WINDOW)
    minutes = max(1, int(((oldest or now) + WINDOW - now) // 60) + 1)
    blocked = by_network >= PER_NETWORK
    busy = blocked and (session.scalar(select(func.count()).select_from(AuthAttempt).where(
        AuthAttempt.kind == LOGIN_BLOCKED, AuthAttempt.network_index == attempt.network_index,
        AuthAttempt.at > now - 60)) or 0) >= BLOCKED_CHECKS_PER_MINUTE
    return Standing(by_address >= PER_ADDRESS, blocked, minutes, busy)


def record_failure(session: Session, attempt: Who, *, now: float,
                   network_blocked: bool = False) -> None:
    _record(session, LOGIN_BLOCKED if network_blocked else LOGIN, attempt, now)


_in_flight: dict[str, int] = {}
_in_flight_lock = threading.Lock()


@contextmanager
def checking(attempt: Who, standing: Standing) -> Iterator[bool]:
    """Whether this process may check a password now: always for a network that isn't
    blocked; for a blocked one, while fewer than BLOCKED_IN_FLIGHT of its checks run."""
    if not standing.network_blocked:
        yield True
        return
    key = attempt.network_index
    with _in_flight_lock:
        admitted = _in_flight.get(key, 0) < BLOCKED_IN_FLIGHT
        if admitted:
            _in_flight[key] = _in_flight.get(key, 0) + 1
    try:
        yield admitted
    finally:
        if admitted:
            with _in_flight_lock:
                _in_flight[key] -= 1
                if not _in_flight[key]:
                    del _in_flight[key]


def clear_address(session: Session, address_index: str) -> None:
    """The address's failed logins forgotten: its owner just proved who they are."""
    session.execute(delete(AuthAttempt).where(AuthAttempt.address_index == address_index,
                                              AuthAttempt.kind.in_((LOGIN, LOGIN_BLOCKED))))


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
