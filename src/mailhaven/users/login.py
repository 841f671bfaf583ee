"""Logging in: the password step, then the second factor's step when the user has TOTP on.
Each step is throttled (users.throttle) and audited; a step that completes the login starts
a new session (none made before it survives: no fixation).

The code step runs blocking work (the database): call it off the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailhaven.audit import service as audit
from mailhaven.services import Services
from mailhaven.users import sessions, throttle, totp
from mailhaven.users.models import User
from mailhaven.users.service import check_password, find_by_email, hashing

# What a step may end in (Outcome.kind).
OK, CODE_OWED, WRONG, UNCONFIRMED, EXPIRED = "ok", "code", "wrong", "unconfirmed", "expired"
ADDRESS_BLOCKED, NETWORK_BLOCKED = "address_blocked", "network_blocked"


@dataclass(frozen=True)
class Outcome:
    """How a step ended; `token`: the new session's cookie value (OK, CODE_OWED);
    `minutes`: how long a block lasts."""

    kind: str
    token: str = ""
    minutes: int = 0


Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True)
class _Begun:
    attempt: throttle.Who
    standing: throttle.Standing
    user: User | None


async def password_step(services: Services, email: str, password: str, network: str, *,
                        run: Runner) -> Outcome:
    """OK with a verified session, CODE_OWED with an unverified one (TOTP on), or why not.
    A right password from a blocked network still gets in (users.throttle says why), within
    the network's few checks: past them it is refused before any hashing. `run` runs the
    database work off the event loop; argon2id runs on its own threads (`hashing`)."""
    begun = await run(lambda: _begin(services, email, network))
    if isinstance(begun, Outcome):
        return begun
    with throttle.checking(begun.attempt, begun.standing) as admitted:
        if not admitted:
            return Outcome(NETWORK_BLOCKED, minutes=begun.standing.minutes)
        right = await hashing(lambda: check_password(begun.user, password))
    outcome: Outcome = await run(lambda: _finish(services, begun, right))
    return outcome


def _begin(services: Services, email: str, network: str) -> _Begun | Outcome:
    now, vault = services.clock.now(), services.vault
    attempt = throttle.who(vault, email, network)
    with services.db.sessions() as session:
        standing = throttle.standing(session, attempt, now=now)
        if standing.address_blocked:
            return Outcome(ADDRESS_BLOCKED, minutes=standing.minutes)
        if standing.network_busy:
            return Outcome(NETWORK_BLOCKED, minutes=standing.minutes)
        return _Begun(attempt, standing, find_by_email(session, vault, email) if email else None)


def _finish(services: Services, begun: _Begun, right: bool) -> Outcome:
    now, vault, user, standing = services.clock.now(), services.vault, begun.user, begun.standing
    with services.db.transaction() as session:
        if not right or user is None:
            throttle.record_failure(session, begun.attempt, now=now,
                                    network_blocked=standing.network_blocked)
            audit.append(session, vault, actor="web", action="web.login_failed",
                         target=f"user:{user.id}" if user else None,
                         details={"step": "password"}, now=now)
            return Outcome(NETWORK_BLOCKED if standing.network_blocked else WRONG,
                           minutes=standing.minutes)
        if user.confirmed_at is None:
            return Outcome(UNCONFIRMED)
        found = session.get(User, user.id)
        assert found is not None
        if found.password_hash != user.password_hash:  # check_password upgraded it
            found.password_hash = user.password_hash
        if found.totp_enabled_at is not None:  # failures are forgiven after the code only
            return Outcome(CODE_OWED, sessions.start_session(session, found, now=now,
                                                             verified=False))
        throttle.clear_address(session, found.email_index)
        token = sessions.start_session(session, found, now=now)
        audit.append(session, vault, actor=f"user:{found.id}", action="web.login",
                     target=f"account:{found.account_id}", details={"factors": 1}, now=now)
        return Outcome(OK, token)


def code_step(services: Services, token: str, code: str, network: str) -> Outcome:
    """The second factor for the unverified session `token`: OK with a new verified session
    (the unverified one ends), or why not (EXPIRED: no such session, start again)."""
    now, vault = services.clock.now(), services.vault
    with services.db.transaction() as session:
        row = sessions.find_session(session, token, now=now)
        user = session.get(User, row.user_id, with_for_update=True) \
            if row is not None and not row.verified else None
        if user is None:
            return Outcome(EXPIRED)
        attempt = throttle.Who(user.email_index, throttle.network_index(vault, network))
        standing = throttle.standing(session, attempt, now=now)
        if standing.address_blocked:
            sessions.end_session(session, token)
            return Outcome(ADDRESS_BLOCKED, minutes=standing.minutes)
        how = totp.verify(session, vault, user, code, now=now)
        if how is None:
            throttle.record_failure(session, attempt, now=now)
            audit.append(session, vault, actor="web", action="web.login_failed",
                         target=f"user:{user.id}", details={"step": "code"}, now=now)
            return Outcome(WRONG)
        sessions.end_session(session, token)
        new = sessions.start_session(session, user, now=now)
        throttle.clear_address(session, user.email_index)
        if how == "recovery":
            audit.append(session, vault, actor=f"user:{user.id}",
                         action="web.recovery_code_used", target=f"user:{user.id}",
                         details={"left": totp.recovery_codes_left(user)}, now=now)
        audit.append(session, vault, actor=f"user:{user.id}", action="web.login",
                     target=f"account:{user.account_id}",
                     details={"factors": 2, "second": how}, now=now)
        return Outcome(OK, new)


def code_owed(services: Services, token: str) -> bool:
    """Whether `token` is a live session whose password was right but whose second factor
    is still owed."""
    if not token:
        return False
    with services.db.sessions() as session:
        row = sessions.find_session(session, token, now=services.clock.now())
        return row is not None and not row.verified
