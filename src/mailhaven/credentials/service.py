"""SMTP credentials: create, change, delete and list a domain's logins; authenticate SMTP AUTH.

A login is the full address `local@domain` of one of the account's domains. It can name a
person, so it is kept as the vault keeps addresses: sealed under its subject's key, found by
its blind index. SMTP AUTH is given only the login, never the account: the login's domain
part, a domain name (not personal), leads to the domain's account, and the blind index in
that account to the row.

Passwords are hashed with argon2id at RFC 9106's second recommended profile (t=3,
m=64 MiB, p=4). The first profile (2 GiB per hash) would let a handful of concurrent SMTP
logins take a small server's memory; the second still makes each guess at a stolen hash cost
64 MiB and about a tenth of a second. At most `CONCURRENT_HASHES` hashes run at once, so a
burst of AUTH attempts costs a bounded 256 MiB rather than 64 MiB per connection.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from mailhaven.audit import service as audit
from mailhaven.clock import SYSTEM_CLOCK, Clock, format_rfc2822
from mailhaven.credentials.models import SmtpCredential
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.storage.base import new_id
from mailhaven.storage.db import affected
from mailhaven.vault import Vault, VaultKey
from mailhaven.vault.service import canonical_domain

MIN_PASSWORD, MAX_PASSWORD = 5, 32  # Mailgun's limits (its help centre and its mock server)
BAD_PASSWORD = "password should be in range 5-32 characters"  # noqa: S105 (a message)
MISSING_LOGIN = "Parameter 'login' is missing"  # Mailgun's reference, POST credentials
NOT_FOUND = "Credentials not found"
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
# RFC 5322 atext and dots, lower-cased, without "/" (a login is also a path segment).
_LOCAL = re.compile(r"[a-z0-9!#$%&'*+=?^_`{|}~.-]+")
CONCURRENT_HASHES = 4
LOGIN_CONTEXT = "smtp_credentials.login"  # bound into the login's encryption

HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
_hashing = threading.BoundedSemaphore(CONCURRENT_HASHES)


@dataclass(frozen=True)
class Credential:
    """A credential as the SMTP server and the API see it; never its password."""

    id: str
    account_id: str
    domain_id: str
    domain_name: str
    login: str  # the full address, user@domain
    created_at: float


@dataclass(frozen=True)
class PasswordHash:
    """A password checked against Mailgun's rules and hashed. Make it before a write
    transaction (`hash_password`): argon2id takes a tenth of a second that no other writer
    should wait for."""

    value: str


def hash_password(password: str) -> PasswordHash:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(BAD_PASSWORD)
    with _hashing:
        return PasswordHash(HASHER.hash(password))


def generate_password() -> str:
    """32 URL-safe characters (192 random bits): as long as Mailgun lets a password be."""
    return secrets.token_urlsafe(24)


def _verify(hashed: str, password: str) -> bool:
    with _hashing:
        try:
            return HASHER.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False


@functools.cache
def _dummy_hash() -> str:
    """What an unknown login's password is checked against, so that it costs as much as a
    wrong password and logins can't be told apart by the time AUTH takes."""
    return HASHER.hash(secrets.token_urlsafe(24))


def full_login(domain_name: str, login: str) -> str:
    """`login` as stored: lower-cased, with the domain's name after a bare local part
    (Mailgun takes `alice` or `alice@mg.example.com`). 400 for anything else."""
    given = login.strip().lower()
    if not given:
        raise BadRequest(MISSING_LOGIN)
    local, at, name = given.rpartition("@")
    if not at:
        local, name = given, domain_name
    if canonical_domain(name) != domain_name:
        raise BadRequest(f"The login must be an address of the domain {domain_name}")
    if (len(local) > MAX_LOCAL or not _LOCAL.fullmatch(local) or local.startswith(".")
            or local.endswith(".") or ".." in local):
        raise BadRequest(f"'{login.strip()}' is not a valid login")
    return f"{local}@{domain_name}"


def _existing_login(domain: Domain, login: str) -> str:
    """A login named in a path: one the domain could not have is simply not found."""
    try:
        return full_login(domain.name, login)
    except BadRequest:
        raise NotFound(NOT_FOUND) from None


def _find(session: Session, vault: Vault, domain: Domain, login: str) -> SmtpCredential:
    row = session.scalar(select(SmtpCredential).where(
        SmtpCredential.domain_id == domain.id,
        SmtpCredential.login_index == vault.blind_index(domain.account_id, login)))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _credential(domain: Domain, row: SmtpCredential, login: str) -> Credential:
    return Credential(row.id, row.account_id, domain.id, domain.name, login, row.created_at)


def _journal(session: Session, vault: Vault, action: str, domain: Domain, *, actor: str,
             now: float, login: str | None = None, count: int | None = None) -> None:
    """A credential change in the audit log: who may send as the domain is a security
    fact. The login, personal, is sealed under its subject's key."""
    details: dict[str, object] = {"account_id": domain.account_id, "domain": domain.name}
    if count is not None:
        details["count"] = count
    key = vault.subject(session, domain.account_id, login) if login else None
    audit.append(session, vault, actor=actor, action=action, target=domain.id,
                 details=details, sealed={"login": login} if key else None, key=key, now=now)


def create(session: Session, vault: Vault, domain: Domain, login: str,
           password: str | PasswordHash, clock: Clock = SYSTEM_CLOCK, *,
           actor: str = "system") -> Credential:
    """A new login of `domain`; 400 when it exists already."""
    full = full_login(domain.name, login)
    hashed = password if isinstance(password, PasswordHash) else hash_password(password)
    key = vault.subject(session, domain.account_id, full)
    taken = BadRequest(f"Login {full} already exists")
    if session.scalar(select(SmtpCredential.id).where(
            SmtpCredential.domain_id == domain.id,
            SmtpCredential.login_index == key.blind_index)) is not None:
        raise taken
    now = clock.now()
    row = SmtpCredential(id=new_id(), account_id=domain.account_id, domain_id=domain.id,
                         login_index=key.blind_index, key_id=key.id,
                         login_sealed=vault.seal_text(key, full, LOGIN_CONTEXT),
                         password_hash=hashed.value, created_at=now, password_changed_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # created meanwhile by a concurrent request
        raise taken from exc
    _journal(session, vault, "credentials.created", domain, actor=actor, now=now, login=full)
    return _credential(domain, row, full)


def set_password(session: Session, vault: Vault, domain: Domain, login: str,
                 password: str | PasswordHash, clock: Clock = SYSTEM_CLOCK, *,
                 actor: str = "system") -> Credential:
    """The login's password, the login made if the domain lacks it: Mailgun's
    `smtp_password` on a domain's create and update, for its postmaster."""
    hashed = password if isinstance(password, PasswordHash) else hash_password(password)
    try:
        return change_password(session, vault, domain, login, hashed, clock, actor=actor)
    except NotFound:
        return create(session, vault, domain, login, hashed, clock, actor=actor)


def change_password(session: Session, vault: Vault, domain: Domain, login: str,
                    password: str | PasswordHash, clock: Clock = SYSTEM_CLOCK, *,
                    actor: str = "system") -> Credential:
    """Only the password changes (Mailgun's PUT); 404 for a login the domain lacks."""
    full = _existing_login(domain, login)
    hashed = password if isinstance(password, PasswordHash) else hash_password(password)
    row = _find(session, vault, domain, full)
    now = clock.now()
    row.password_hash, row.password_changed_at = hashed.value, now
    _journal(session, vault, "credentials.password_changed", domain, actor=actor, now=now,
             login=full)
    return _credential(domain, row, full)


def delete(session: Session, vault: Vault, domain: Domain, login: str,
           clock: Clock = SYSTEM_CLOCK, *, actor: str = "system") -> str:
    """Delete one login of `domain`; the full login deleted (Mailgun's `spec`)."""
    full = _existing_login(domain, login)
    session.delete(_find(session, vault, domain, full))
    _journal(session, vault, "credentials.deleted", domain, actor=actor, now=clock.now(),
             login=full)
    return full


def delete_all(session: Session, vault: Vault, domain: Domain, clock: Clock = SYSTEM_CLOCK,
               *, actor: str = "system") -> int:
    """Delete every login of `domain`; how many there were."""
    count = affected(session.execute(
        sql_delete(SmtpCredential).where(SmtpCredential.domain_id == domain.id)
        .execution_options(synchronize_session=False)))
    if count:
        _journal(session, vault, "credentials.deleted_all", domain, actor=actor,
                 now=clock.now(), count=count)
    return count


def list_page(session: Session, vault: Vault, domain: Domain, *, skip: int = 0,
              limit: int = 100) -> tuple[int, list[Credential]]:
    """(how many logins the domain has, this page of them), oldest first."""
    query = select(SmtpCredential).where(SmtpCredential.domain_id == domain.id,
                                         SmtpCredential.key_id.is_not(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(SmtpCredential.created_at, SmtpCredential.id)
                                .offset(skip).limit(limit)))
    keys = vault.keys(session, (row.key_id for row in rows))
    return total, [_credential(domain, row, login) for row in rows
                   if (login := open_login(vault, keys, row)) is not None]


def open_login(vault: Vault, keys: dict[str, VaultKey], row: SmtpCredential) -> str | None:
    """The row's login, opened with its subject's key from `keys` (None once erased)."""
    key = keys.get(row.key_id or "")
    return None if key is None else vault.open_text(key, row.login_sealed, LOGIN_CONTEXT)


def credential_json(credential: Credential) -> dict[str, object]:
    """An item of Mailgun's credentials list (`size_bytes` is for Mailgun's mailboxes,
    which Mailhaven doesn't keep)."""
    return {"mailbox": credential.login, "login": credential.login,
            "created_at": format_rfc2822(credential.created_at, numeric_zone=True),
            "size_bytes": None}


def canonical_login(login: str) -> str:
    """The one spelling of a login AUTH may be given many ways (`MAILER@mg.example.com.`,
    full-width letters in its domain, spaces around it): the local part lower-cased, the
    domain as `canonical_domain` folds it. What AUTH looks up, and what its failures are
    counted under."""
    local, at, name = login.strip().lower().rpartition("@")
    return f"{local}@{canonical_domain(name)}" if at else name


def authenticate(session: Session, vault: Vault, login: str,
                 password: str) -> Credential | None:
    """The credential `login` and `password` prove, or None. SMTP AUTH's check: it costs one
    argon2id verification whether the login exists or not.

    The login's domain part names the domain: its verified copy, or, while no account has
    verified the name, every account's copy (each holds its own logins, told apart by the
    account-scoped blind index). Each copy's row is checked; when the password proves rows
    of two accounts, neither is taken — else one tenant could take another's submissions
    by creating the same login with a password it has learned."""
    local, at, name = canonical_login(login).rpartition("@")
    rows: list[tuple[SmtpCredential, Domain]] = []
    if at and local:
        copies = list(session.scalars(select(Domain).options(lazyload(Domain.dkim_keys))
                                      .where(Domain.name == name)))
        verified = [d for d in copies if d.state == ACTIVE_DOMAIN]
        indexes = {(d.id, vault.blind_index(d.account_id, f"{local}@{d.name}")): d
                   for d in verified or copies}
        if indexes:
            found = session.scalars(select(SmtpCredential).where(
                SmtpCredential.domain_id.in_([i for i, _ in indexes]),
                SmtpCredential.login_index.in_([x for _, x in indexes])))
            rows = [(row, indexes[row.domain_id, row.login_index]) for row in found
                    if (row.domain_id, row.login_index) in indexes]
    if not rows:
        _verify(_dummy_hash(), password)
        return None
    proved = [(row, domain) for row, domain in rows if _verify(row.password_hash, password)]
    if len({row.account_id for row, _ in proved}) != 1:
        return None  # none, or the same login and password in two accounts: whose is it?
    row, domain = proved[0]
    return _credential(domain, row, f"{local}@{domain.name}")
