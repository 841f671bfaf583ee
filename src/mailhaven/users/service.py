"""Users of an account: roles, passwords, the address they log in with.

Roles are Mailgun's. A login names no account, so a user's address is unique on the
platform and found by a blind index under a platform-wide scope."""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven.clock import Clock
from mailhaven.errors import BadRequest, Conflict
from mailhaven.storage.base import new_id
from mailhaven.users.models import User
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

if TYPE_CHECKING:
    from mailhaven.services import Platform, Services

ROLES = ("admin", "developer", "analyst", "billing", "support")
# What each role may do in the panel (and its API keys through the API).
_ALL = frozenset({"view", "logs", "manage_domains", "manage_keys", "manage_sending",
                  "manage_suppressions", "manage_team", "manage_account", "privacy"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": _ALL,
    "developer": _ALL - {"manage_team", "manage_account"},
    "analyst": frozenset({"view", "logs"}),
    "billing": frozenset({"view"}),
    "support": frozenset({"view", "logs", "manage_suppressions", "privacy"}),
}
LOGIN_SCOPE = "panel-users"  # the blind index's scope: logins are platform-wide
MIN_PASSWORD, MAX_PASSWORD = 12, 256  # NIST SP 800-63B: length, no composition rules
PASSWORD_LENGTH = f"A password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
ADDRESS_TAKEN = "A user with this e-mail address already exists"
NAME_CONTEXT, EMAIL_CONTEXT = "users.name", "users.email"

HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
HASHING_THREADS = 4
_hashing = threading.BoundedSemaphore(HASHING_THREADS)  # argon2id takes 64 MiB each
_hash_limiter: anyio.CapacityLimiter | None = None
T = TypeVar("T")


class Tally:
    """A count that threads add to: how many argon2id hashes and checks ran (tests bound it)."""

    def __init__(self) -> None:
        self._count, self._lock = 0, threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._count += 1

    @property
    def count(self) -> int:
        return self._count


argon2_runs = Tally()


async def hashing(fn: Callable[[], T]) -> T:
    """Run argon2id work on threads of its own (HASHING_THREADS at a time), so that a flood
    of logins waits there without holding the threads the database work shares."""
    global _hash_limiter
    if _hash_limiter is None:
        _hash_limiter = anyio.CapacityLimiter(HASHING_THREADS)
    return await anyio.to_thread.run_sync(fn, limiter=_hash_limiter)


def may(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def hash_password(password: str) -> str:
    """Checked for length, then hashed: call it before a write transaction (a tenth of a
    second no other writer should wait for)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(PASSWORD_LENGTH)
    with _hashing:
        argon2_runs.add()
        return HASHER.hash(password)


def check_password(user: User | None, password: str) -> bool:
    """Costs one argon2id verification whether the user exists or not, so a login can't
    tell by its time which addresses have accounts; upgrades an old hash's parameters."""
    hashed = user.password_hash if user is not None and user.password_hash else None
    with _hashing:
        argon2_runs.add()
        try:
            ok = HASHER.verify(hashed or _dummy_hash(), password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False
        if ok and user is not None and HASHER.check_needs_rehash(hashed or ""):
            user.password_hash = HASHER.hash(password)
    return ok


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(24))


def email_index(vault: Vault, email: str) -> str:
    return vault.blind_index(LOGIN_SCOPE, normalize_address(email))


def find_by_email(session: Session, vault: Vault, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_index == email_index(vault, email)))


def create_user(session: Session, vault: Vault, *, account_id: str, name: str, email: str,
                password_hash: str | None, role: str, clock: Clock,
                confirmed: bool = False) -> User:
    """A user of the account; their name and address sealed under their subject key."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    index = email_index(vault, email)
    if session.scalar(select(User.id).where(User.email_index == index)) is not None:
        raise Conflict(ADDRESS_TAKEN)
    key = vault.subject(session, account_id, email)
    now = clock.now()
    user = User(id=new_id(), account_id=account_id, role=role, key_id=key.id,
                name_sealed=vault.seal_text(key, name, NAME_CONTEXT),
                email_sealed=vault.seal_text(key, normalize_address(email), EMAIL_CONTEXT),
                email_index=index, password_hash=password_hash,
                confirmed_at=now if confirmed else None, created_at=now)
    session.add(user)
    session.flush()
    return user


def user_details(session: Session, vault: Vault, user: User) -> tuple[str, str] | None:
    """(name, email) opened through the vault; None once the user's key is erased."""
    key = vault.keys(session, [user.key_id]).get(user.key_id)
    if key is None:
        return None
    return (vault.open_text(key, user.name_sealed, NAME_CONTEXT),
            vault.open_text(key, user.email_sealed, EMAIL_CONTEXT))


def account_users(session: Session, account_id: str) -> list[User]:
    return list(session.scalars(select(User).where(User.account_id == account_id)
                                .order_by(User.created_at, User.id)))


def region_of_address(platform: Platform, email: str) -> Services | None:
    """The region of the panel user with this address, by each region's blind index (no
    main database stores the address): a confirmed user's region before one where the
    address only signed up or was invited, so an unconfirmed sign-up elsewhere can't take
    the address's logins away from its owner."""
    found: Services | None = None
    for services in platform.regions.values():
        with services.db.sessions() as session:
            user = session.execute(select(User.id, User.confirmed_at).where(
                User.email_index == email_index(services.vault, email))).first()
        if user is not None and user.confirmed_at is not None:
            return services
        if user is not None and found is None:
            found = services
    return found
