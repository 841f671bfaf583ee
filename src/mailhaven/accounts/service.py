"""Create accounts, issue and check API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailhaven import audit
from mailhaven.accounts.models import Account, ApiKey
from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.errors import BadRequest, Forbidden, NotFound
from mailhaven.storage import revocations
from mailhaven.storage.base import new_id
from mailhaven.storage.revocations import Revoked
from mailhaven.vault import Vault
from mailhaven.vault.recognise import kept_clear

# The regions an account may be made in when the caller names none (tests, old callers);
# the CLI, the API and the panel pass the installation's own (`Settings.regions`).
REGIONS = ("us", "eu")
# Mailgun's roles, which limit keys as they limit users (users.service.PERMISSIONS): a key
# may call a route when its role has the panel permission the route needs (deps.key_allows).
KEY_ROLES = ("admin", "developer", "analyst", "billing", "support")
FULL_ACCESS = "admin"  # keys made by the CLI, at sign-up and before keys had roles
_RANK = {"admin": 2, "developer": 1}  # the others are peers below them
# Mailgun's key roles (its `/v1/keys`) as ours: "basic" is its word for an analyst's key.
# Its "sending" role is for keys of kind "domain", one domain's sending only: Mailhaven's
# keys are the account's (kind "user"), so no role of ours is as narrow and none is given.
MAILGUN_ROLES = {"admin": "admin", "developer": "developer", "basic": "analyst"}
KEY_KINDS = ("domain", "user", "web")  # Mailgun's; Mailhaven's keys are all "user" keys
ACCOUNT_KIND = "user"
BAD_ROLE = "role must be one of admin, basic, developer (or analyst, billing, support)"
SENDING_ROLE = ("role `sending` is for keys of kind `domain`, one domain's: Mailhaven's keys "
                "are the account's (kind `user`); give role basic, developer or admin")
ROLE_ABOVE_CALLER = "could not create key, a key can't be given a role above its maker's ({role})"
KEY_NOT_FOUND = "no key matching id"
MAX_DESCRIPTION = 200  # ApiKey.description's width


class KeyOwner(NamedTuple):
    """Who an API key speaks for, and with what role."""

    account_id: str
    role: str


@dataclass(frozen=True)
class IssuedKey:
    account_id: str
    api_key: str  # shown once


@dataclass(frozen=True)
class AccountSummary:
    """An account as an operator lists it; `name` is None once its holder was erased."""

    account_id: str
    name: str | None
    region: str
    created_at: float
    deleted: bool


def key_digest(api_key: str) -> str:
    # API keys carry 160 random bits, so a fast hash is as strong as a slow one here and
    # keeps authentication off the hot path; passwords (low entropy) get argon2id.
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_account(session: Session, vault: Vault, *, name: str, email: str,
                   region: str = "us", clock: Clock = SYSTEM_CLOCK,
                   regions: Sequence[str] = REGIONS) -> IssuedKey:
    """An account and its first API key (the CLI's and the API's way in)."""
    account_id = new_account(session, vault, name=name, email=email, region=region,
                             clock=clock, regions=regions)
    return IssuedKey(account_id, issue_key(session, account_id, clock=clock))


def new_account(session: Session, vault: Vault, *, name: str, email: str,
                region: str = "us", clock: Clock = SYSTEM_CLOCK,
                regions: Sequence[str] = REGIONS) -> str:
    """An account without any API key (the panel's sign-up: its users make keys when they
    need them); its id. `regions`: the installation's (`Settings.regions`)."""
    if region not in regions:
        raise ValueError(f"region must be one of {', '.join(regions)}")
    account = Account(id=new_id(), region=region, created_at=clock.now())
    session.add(account)
    session.flush()
    holder = vault.subject(session, account.id, email)
    account.holder_key_id = holder.id
    account.name_sealed = vault.seal_text(holder, name, "account.name")
    account.email_sealed = vault.seal_text(holder, email, "account.email")
    return account.id


def require_account(session: Session, account_id: str) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account not found: {account_id}")
    return account


def list_accounts(session: Session, vault: Vault) -> list[AccountSummary]:
    """Every account, oldest first, with its holder's name opened through the vault."""
    accounts = list(session.scalars(select(Account).order_by(Account.created_at, Account.id)))
    live = vault.keys(session, [a.holder_key_id for a in accounts])

    def name(account: Account) -> str | None:
        key = live.get(account.holder_key_id or "")
        if key is None or account.name_sealed is None:
            return None
        return vault.open_text(key, account.name_sealed, "account.name")

    return [AccountSummary(a.id, name(a), a.region, a.created_at, a.deleted_at is not None)
            for a in accounts]


def issue_key(session: Session, account_id: str, *, description: str = "",
              role: str = FULL_ACCESS, created_by: str | None = None,
              clock: Clock = SYSTEM_CLOCK) -> str:
    """A new key (shown once: only its digest is kept)."""
    return new_key(session, account_id, description=description, role=role,
                   created_by=created_by, clock=clock)[1]


def new_key(session: Session, account_id: str, *, description: str = "",
            role: str = FULL_ACCESS, created_by: str | None = None,
            clock: Clock = SYSTEM_CLOCK) -> tuple[ApiKey, str]:
    """A new key's row and its secret (shown once: only its digest is kept)."""
    if role not in KEY_ROLES:
        raise ValueError(f"role must be one of {', '.join(KEY_ROLES)}")
    api_key = f"key-{secrets.token_hex(20)}"
    row = ApiKey(
        id=new_id(), account_id=account_id, digest=key_digest(api_key), hint=api_key[-4:],
        description=description, role=role, created_by=created_by, created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row, api_key


def key_description(given: str) -> str:
    """A key's description as kept: in clear, so short and holding no address."""
    given = given.strip()
    if len(given) > MAX_DESCRIPTION:
        raise BadRequest(f"description is at most {MAX_DESCRIPTION} characters")
    return kept_clear(given, "A key's description")


def journal_key(session: Session, vault: Vault, action: str, key: ApiKey, *, actor: str,
                now: float) -> None:
    """A key made or revoked outside the panel, in the audit log: who may call the API is
    a security fact. Its id, role and last characters, never the secret."""
    audit.append(session, vault, actor=actor, action=action, target=f"account:{key.account_id}",
                 details={"key_id": key.id, "role": key.role, "hint": key.hint}, now=now)


def key_role(given: str) -> str:
    """Our role for a role a client names: Mailgun's (`admin`, `basic`, `developer`) or
    ours; BadRequest for `sending` (no key of ours is one domain's) and anything else."""
    given = given.strip().lower()
    if given == "sending":
        raise BadRequest(SENDING_ROLE)
    role = MAILGUN_ROLES.get(given, given)
    if role not in KEY_ROLES:
        raise BadRequest(BAD_ROLE)
    return role


def mailgun_role(role: str) -> str:
    """A key's role as Mailgun names it (`basic` for an analyst's); ours where it has none."""
    return next((theirs for theirs, ours in MAILGUN_ROLES.items() if ours == role), role)


def create_key_as(session: Session, account_id: str, caller_role: str, *, role: str,
                  description: str = "", clock: Clock = SYSTEM_CLOCK) -> tuple[ApiKey, str]:
    """A key made through the API by a key of `caller_role`: of its role or a lesser one
    (as a panel user's), else Forbidden, so a key can't mint one that may do more."""
    if role not in grantable(caller_role):
        raise Forbidden(ROLE_ABOVE_CALLER.format(role=mailgun_role(caller_role)))
    return new_key(session, account_id, description=description, role=role, clock=clock)


def grantable(role: str) -> tuple[str, ...]:
    """The roles a user of `role` may give a key: their own, or a lesser one."""
    rank = _RANK.get(role, 0)
    return tuple(r for r in KEY_ROLES if r == role or _RANK.get(r, 0) < rank)


def account_keys(session: Session, account_id: str) -> list[ApiKey]:
    """The account's keys in use, newest first."""
    return list(session.scalars(select(ApiKey).where(
        ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)))


def revoke_key(session: Session, account_id: str, key_id: str, *,
               clock: Clock = SYSTEM_CLOCK, caller_role: str | None = None) -> ApiKey:
    """Revoke one of the account's keys; another account's key is as absent as none.
    Every process's KeyCache drops it at commit (`storage.revocations`). With
    `caller_role` (a key revoking another), a key of a greater role is Forbidden."""
    key = session.scalar(select(ApiKey).where(
        ApiKey.id == key_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None)))
    if key is None:
        raise NotFound(KEY_NOT_FOUND)
    if caller_role is not None and key.role not in grantable(caller_role):
        raise Forbidden(f"could not delete key, its role ({mailgun_role(key.role)}) is above "
                        f"this key's ({mailgun_role(caller_role)})")
    key.revoked_at = clock.now()
    revocations.announce(session, Revoked("key", key.digest))
    return key


def revoke_keys(session: Session, account_id: str, *, description: str,
                clock: Clock = SYSTEM_CLOCK) -> None:
    for key in session.scalars(select(ApiKey).where(
        ApiKey.account_id == account_id, ApiKey.description == description,
        ApiKey.revoked_at.is_(None),
    )):
        key.revoked_at = clock.now()
        revocations.announce(session, Revoked("key", key.digest))


def account_for_digest(session: Session, digest: str) -> KeyOwner | None:
    """The account an API key (by its digest) belongs to and the key's role, or None."""
    row = session.execute(
        select(ApiKey.account_id, ApiKey.role)
        .where(ApiKey.digest == digest, ApiKey.revoked_at.is_(None))
    ).first()
    return KeyOwner(row[0], row[1]) if row else None


class KeyCache:
    """API keys seen in the last few seconds (by digest), so most requests skip a query.

    A key revoked or an account deleted, by this process or another, is dropped when it is
    announced (`storage.revocations`: at once here, within a second or two elsewhere); `TTL`
    bounds what a process that missed the announcement keeps. Only valid keys are cached; a
    wrong key always costs a lookup.

    Drops come from the revocations thread while requests put: a lock keeps them apart, and
    each drop bumps `generation`, so a lookup begun before it (`put(..., looked_up_at=)`)
    cannot bring back a key that was revoked while it read the database.
    """

    TTL = 10.0

    def __init__(self, clock: Clock = SYSTEM_CLOCK, size: int = 10_000) -> None:
        self._clock, self._size = clock, size
        self._known: dict[str, tuple[KeyOwner, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # drops so far: read before a lookup, handed to `put`
        revocations.subscribe(self)

    def get(self, digest: str) -> KeyOwner | None:
        with self._lock:
            hit = self._known.get(digest)
        if hit is None or hit[1] < self._clock.now():
            return None
        return hit[0]

    def forget(self, digest: str) -> None:
        """Drop one key at once (after its revocation in this process)."""
        with self._lock:
            self.generation += 1
            self._known.pop(digest, None)

    def forget_account(self, account_id: str) -> None:
        """Drop an account's keys at once (after deletion)."""
        with self._lock:
            self.generation += 1
            self._known = {d: hit for d, hit in self._known.items()
                           if hit[0].account_id != account_id}

    def drop(self, revoked: Collection[Revoked] | None) -> None:
        """What `storage.revocations` heard: keys and accounts named, or (None) all."""
        if revoked is None:
            with self._lock:
                self.generation += 1
                self._known = {}
            return
        for item in revoked:
            if item.kind == "key":
                self.forget(item.value)
            elif item.kind == "account":
                self.forget_account(item.value)

    def put(self, digest: str, owner: KeyOwner, *, looked_up_at: int) -> None:
        """Keep what a lookup found, unless something was dropped since it began
        (`looked_up_at`: the `generation` read before it): it may be what was revoked."""
        with self._lock:
            if looked_up_at != self.generation:
                return
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[digest] = (owner, self._clock.now() + self.TTL)
