"""Login throttling: failed logins counted per address and per client network, in the
database, so that every process of an installation counts them alike.

An address with too many recent failures is refused outright (429), whatever the password:
that stops guessing one user's password. A network with too many failures is told so
(429) on each further wrong password, but a right password still logs in, unless the
address itself is blocked: an office behind one NAT address must not be locked out by one
stranger in it. Against spraying from one network (one guess at many addresses) the long
passwords with their deny list do the work, and the per-address limit still holds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailhaven.users.models import LoginFailure
from mailhaven.users.service import email_index
from mailhaven.vault import Vault

WINDOW = 15 * 60
PER_ADDRESS, PER_NETWORK = 10, 30
NETWORK_SCOPE = "panel-login-networks"
ADDRESS_BLOCKED = ("Too many failed logins for this address. Wait {minutes} minutes, or reset "
                   "your password with the link below.")
NETWORK_BLOCKED = ("Too many failed logins from your network. Wait {minutes} minutes before "
                   "trying again.")


@dataclass(frozen=True)
class Who:
    """Whom a login attempt is counted for: blind indexes, never the address in clear."""

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


def standing(session: Session, attempt: Who, *, now: float) -> Standing:
    since = now - WINDOW
    by_address = session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.address_index == attempt.address_index, LoginFailure.at > since)).one()
    by_network = session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.network_index == attempt.network_index, LoginFailure.at > since)).one()
    oldest = min((t for t in (by_address[1], by_network[1]) if t is not None), default=now)
    minutes = max(1, int((oldest + WINDOW - now) // 60) + 1)
    return Standing(by_address[0] >= PER_ADDRESS, by_network[0] >= PER_NETWORK, minutes)


def record_failure(session: Session, attempt: Who, *, now: float) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - WINDOW))
    session.add(LoginFailure(address_index=attempt.address_index,
                             network_index=attempt.network_index, at=now))


def clear_address(session: Session, address_index: str) -> None:
    """The address's failures forgotten: its owner just proved who they are."""
    session.execute(delete(LoginFailure).where(LoginFailure.address_index == address_index))
