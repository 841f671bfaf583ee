"""A user's second factor as the settings page handles it: its state, the enrolment (with
its audit entry), and turning it off with proof (the password or a code), throttled like a
login. The rules of codes themselves are users.totp's."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailhaven.audit import service as audit
from mailhaven.errors import BadRequest, NotFound, TooManyRequests
from mailhaven.services import Services
from mailhaven.users import throttle, totp
from mailhaven.users.models import User
from mailhaven.users.service import check_password

NOT_YOU = "Neither the password nor the code is right."
WRONG_PASSWORD = "Your current password is not right."  # noqa: S105 (a message)


@dataclass(frozen=True)
class State:
    enabled: bool
    recovery_codes_left: int
    pending: totp.Enrolment | None  # an enrolment under way


def _user(session: Session, user_id: str, *, lock: bool = False) -> User:
    user = session.get(User, user_id, with_for_update=lock)
    if user is None:
        raise NotFound("There is nothing here.")
    return user


def state(services: Services, user_id: str, label: str) -> State:
    with services.db.sessions() as session:
        user = _user(session, user_id)
        return State(user.totp_enabled_at is not None, totp.recovery_codes_left(user),
                     totp.pending_enrolment(session, services.vault, user, label))


def start(services: Services, user_id: str, *, password: str, network: str) -> None:
    """A new pending secret given the current password (Conflict when 2FA is on already).
    The password, not the session alone: someone with a moment at an unlocked browser must
    not enrol their own phone, which a password reset would leave on. A wrong password
    counts as a failed login of the address (BadRequest); past its limit, TooManyRequests."""
    now = services.clock.now()
    with services.db.sessions() as session:
        user = _user(session, user_id)
        who = throttle.Who(user.email_index, throttle.network_index(services.vault, network))
        standing = throttle.standing(session, who, now=now)
    if standing.address_blocked:  # refused before any hashing
        raise TooManyRequests(throttle.ADDRESS_BLOCKED.format(minutes=standing.minutes))
    right = bool(password) and check_password(user, password)
    with services.db.transaction() as session:
        if not right:
            throttle.record_failure(session, who, now=now)
        else:
            totp.start_enrolment(session, services.vault, _user(session, user_id))
    if not right:  # raised after the commit, so that the failure is counted
        raise BadRequest(WRONG_PASSWORD)


def enable(services: Services, user_id: str, code: str) -> list[str]:
    """2FA on once `code` matches the pending secret (BadRequest otherwise): the recovery
    codes, to show once."""
    now = services.clock.now()
    with services.db.transaction() as session:
        user = _user(session, user_id, lock=True)
        codes = totp.confirm_enrolment(session, services.vault, user, code, now=now)
        audit.append(session, services.vault, actor=f"user:{user.id}",
                     action="web.2fa_enabled", target=f"user:{user.id}", now=now)
        return codes


def disable(services: Services, user_id: str, *, password: str, code: str,
            network: str) -> None:
    """2FA off given the password or a current code. A wrong proof counts as a failed
    login of the address (BadRequest); past the address's limit, TooManyRequests."""
    now = services.clock.now()
    with services.db.sessions() as session:
        user = _user(session, user_id)
    right_password = bool(password) and check_password(user, password)
    with services.db.transaction() as session:
        found = _user(session, user_id, lock=True)
        who = throttle.Who(found.email_index, throttle.network_index(services.vault, network))
        standing = throttle.standing(session, who, now=now)
        if standing.address_blocked:
            raise TooManyRequests(throttle.ADDRESS_BLOCKED.format(minutes=standing.minutes))
        if not right_password and not (
                code and totp.verify(session, services.vault, found, code, now=now)):
            throttle.record_failure(session, who, now=now)
            wrong = True
        else:
            totp.disable(found)
            audit.append(session, services.vault, actor=f"user:{found.id}",
                         action="web.2fa_disabled", target=f"user:{found.id}", now=now)
            wrong = False
    if wrong:  # raised after the commit, so that the failure is counted
        raise BadRequest(NOT_YOU)
