"""An account's team: invitations, roles, removal, and each user's own profile (name,
address, password). Every change is audited in its transaction, with no address in clear.

Users are platform-wide by address (a login names no account), so an address that already
has a user anywhere can't be invited or taken: an invitation to it answers like any other
(its owner gets a notice) and makes nothing. An account always keeps an Admin."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.accounts.service import grantable
from mailhaven.addresses import parse_addresses
from mailhaven.audit import service as audit
from mailhaven.errors import BadRequest, Conflict, NotFound
from mailhaven.privacy import erasure
from mailhaven.services import Services
from mailhaven.site.mail import existing_platform_account
from mailhaven.storage import revocations
from mailhaven.storage.revocations import Revoked
from mailhaven.users import throttle
from mailhaven.users.mail import send
from mailhaven.users.models import User, UserToken
from mailhaven.users.service import (
    ADDRESS_TAKEN,
    EMAIL_CONTEXT,
    NAME_CONTEXT,
    ROLES,
    create_user,
    email_index,
    user_details,
)
from mailhaven.users.sessions import digest, end_user_sessions
from mailhaven.users.tokens import INVALID, TTL, issue_token, redeem_token
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

LAST_ADMIN = "An account needs an Admin: make another user Admin first."
NO_SUCH_USER = "No such user in this account"
ONE_ADDRESS = "Enter one e-mail address"
MAX_NAME = 200
ALREADY_INVITED = """Hello,

{inviter} invited this address to their team on Mailhaven. This address already has a
Mailhaven user, and an address belongs to one team only, so nothing was changed. If you
want to join them, ask them to invite another address of yours.
"""
ROLE_NAMES = {"admin": "Admin", "developer": "Developer", "analyst": "Analyst",
              "billing": "Billing", "support": "Support"}


@dataclass(frozen=True)
class Member:
    """A user of the account as the team page lists them."""

    id: str
    name: str
    email: str
    role: str
    two_factor: bool
    created_at: float
    last_login_at: float | None
    pending: bool  # invited, not yet accepted


def address(value: str) -> str:
    """The one address in a form field, normalised; 400 otherwise."""
    try:
        found = parse_addresses([value.strip()], "email", limit=1) if value.strip() else []
    except BadRequest:  # a list, or no address at all
        found = []
    if len(found) != 1:
        raise BadRequest(ONE_ADDRESS)
    return normalize_address(found[0].email)


def clean_name(value: str) -> str:
    name = " ".join(value.split())
    if not 0 < len(name) <= MAX_NAME:
        raise BadRequest(f"A name is 1 to {MAX_NAME} characters long")
    return name


def members(session: Session, vault: Vault, account_id: str) -> list[Member]:
    out = []
    for user in session.scalars(select(User).where(User.account_id == account_id)
                                .order_by(User.created_at, User.id)):
        details = user_details(session, vault, user)
        if details is None:
            continue  # erased
        out.append(Member(user.id, details[0], details[1], user.role,
                          user.totp_enabled_at is not None, user.created_at,
                          user.last_login_at, user.confirmed_at is None))
    return out


def member(session: Session, account_id: str, user_id: str, *, lock: bool = False) -> User:
    """A user of this account; another account's user is as absent as a missing one."""
    user = session.get(User, user_id, with_for_update=lock) if len(user_id) <= 24 else None
    if user is None or user.account_id != account_id:
        raise NotFound(NO_SUCH_USER)
    return user


def _lock_team(session: Session, account_id: str) -> None:
    """Team changes of one account run one at a time (two Admins demoting each other at
    once must not leave none)."""
    session.get(Account, account_id, with_for_update=True)


def _other_admins(session: Session, account_id: str, user_id: str) -> int:
    return session.scalar(select(func.count()).select_from(User).where(
        User.account_id == account_id, User.role == "admin", User.id != user_id,
        User.confirmed_at.is_not(None))) or 0


def _audit(session: Session, vault: Vault, by: str, action: str, *,
           target: str | None = None, details: dict[str, object] | None = None, now: float) -> None:
    audit.append(session, vault, actor=f"user:{by}", action=action, target=target,
                 details=details, now=now)


def invite(session: Session, services: Services, *, account_id: str, by: str, email: str,
           role: str, name: str = "", base_url: str) -> User | None:
    """A pending user with no password, and the mailed link that lets them choose one.
    An address that has a user already (here or in another account) is answered alike:
    nothing is made, its owner gets a notice (None). At most INVITES_PER_ACCOUNT an hour
    (TooManyRequests)."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    email = address(email)
    _lock_team(session, account_id)
    inviter = member(session, account_id, by)
    inviter_name = (user_details(session, services.vault, inviter) or ("A colleague", ""))[0]
    now = services.clock.now()
    throttle.admit_invitation(session, services.vault, account_id, email, now=now)
    if session.scalar(select(User.id).where(
            User.email_index == email_index(services.vault, email))) is not None:
        send(session, services, to=email, subject="You are invited to Mailhaven",
                         text=ALREADY_INVITED.format(inviter=inviter_name))
        _audit(session, services.vault, by, "web.invite", details={"role": role}, now=now)
        return None
    user = create_user(session, services.vault, account_id=account_id,
                       name=" ".join(name.split())[:MAX_NAME], email=email, password_hash=None,
                       role=role, clock=services.clock)
    _mail_invitation(session, services, user, email, inviter_name, base_url=base_url)
    _audit(session, services.vault, by, "web.invite", target=f"user:{user.id}",
           details={"role": role}, now=now)
    return user


def resend_invitation(session: Session, services: Services, *, account_id: str, by: str,
                      user_id: str, base_url: str) -> None:
    """A new link for a user who has not accepted yet (the old one may have expired)."""
    _lock_team(session, account_id)
    user = member(session, account_id, user_id)
    if user.confirmed_at is not None:
        raise Conflict("This user has already joined")
    details = user_details(session, services.vault, user)
    inviter = user_details(session, services.vault, member(session, account_id, by))
    if details is None:
        raise NotFound(NO_SUCH_USER)
    session.execute(update(UserToken).where(  # one live invitation link at a time
        UserToken.user_id == user.id, UserToken.purpose == "invite",
        UserToken.used_at.is_(None)).values(used_at=services.clock.now()))
    _mail_invitation(session, services, user, details[1],
                     (inviter or ("A colleague", ""))[0], base_url=base_url)
    _audit(session, services.vault, by, "web.invite.resent", target=f"user:{user.id}",
           now=services.clock.now())


def _mail_invitation(session: Session, services: Services, user: User, email: str,
                     inviter_name: str, *, base_url: str) -> None:
    token = issue_token(session, user.id, "invite", now=services.clock.now())
    days = TTL["invite"] // 86400
    send(session, services, to=email, subject="You are invited to Mailhaven", text=(
        f"{inviter_name} invited you to their team on Mailhaven as {ROLE_NAMES[user.role]}."
        f"\n\nAccept the invitation and choose your password:\n{base_url}/invite/{token}\n\n"
        f"The link works once, for {days} days. If you did not expect it, ignore this mail."))


def accept_invitation(session: Session, vault: Vault, token: str, *, name: str,
                      password_hash: str, now: float) -> User:
    """The invited user's name and password set, their address confirmed (the link came to
    it); the token used. `password_hash` made by the caller, outside the transaction."""
    name = clean_name(name)
    user = redeem_token(session, token, "invite", now=now)
    key = vault.keys(session, [user.key_id]).get(user.key_id)
    if key is None:
        raise NotFound(INVALID)
    user.name_sealed = vault.seal_text(key, name, NAME_CONTEXT)
    user.password_hash = password_hash
    user.confirmed_at = now
    audit.append(session, vault, actor=f"user:{user.id}", action="web.invite.accepted",
                 target=f"account:{user.account_id}", now=now)
    return user


@dataclass(frozen=True)
class RoleChange:
    user: User
    revoked: list[str]  # digests of the user's keys the new role may not grant


def change_role(session: Session, vault: Vault, *, account_id: str, by: str, user_id: str,
                role: str, now: float) -> RoleChange:
    """The new role; the user's keys with a role it may not grant are revoked."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    _lock_team(session, account_id)
    user = member(session, account_id, user_id, lock=True)
    if user.role == role:
        return RoleChange(user, [])
    if user.role == "admin" and not _other_admins(session, account_id, user.id):
        raise Conflict(LAST_ADMIN)
    before, user.role = user.role, role
    revoked = _revoke_keys(session, user, keep=grantable(role), now=now)
    _audit(session, vault, by, "web.role_change", target=f"user:{user.id}",
           details={"from": before, "to": role, "keys_revoked": len(revoked)}, now=now)
    return RoleChange(user, revoked)


def _revoke_keys(session: Session, user: User, *, keep: tuple[str, ...],
                 now: float) -> list[str]:
    """Revokes the API keys the user made whose role is not in `keep`: their digests, for
    the caller to drop from the process's KeyCache once this commits."""
    keys = list(session.scalars(select(ApiKey).where(
        ApiKey.account_id == user.account_id, ApiKey.created_by == user.id,
        ApiKey.revoked_at.is_(None))))
    gone = [key for key in keys if key.role not in keep]
    for key in gone:
        key.revoked_at = now
    revocations.announce(session, *(Revoked("key", key.digest) for key in gone))
    return [key.digest for key in gone]


def remove(session: Session, vault: Vault, *, account_id: str, by: str, user_id: str,
           now: float, data_dir: Path) -> list[str]:
    """The user goes: their sessions end at once, their links stop working and their row,
    with their sealed name and address, is deleted. Their vault subject key stays: it is
    the account's key for that address, which may also seal mail the account sent to it
    (a recipient's erasure is its own request); account deletion destroys it. The API keys
    they made are revoked: their digests, for the caller's KeyCache once this commits. The
    platform's own mail to their address (confirmations, resets) is erased: the address is
    theirs alone (a user's address is unique on the platform)."""
    _lock_team(session, account_id)
    user = member(session, account_id, user_id, lock=True)
    if user.role == "admin" and user.confirmed_at is not None \
            and not _other_admins(session, account_id, user.id):
        raise Conflict(LAST_ADMIN)
    details = user_details(session, vault, user)
    end_user_sessions(session, user.id)
    revoked = _revoke_keys(session, user, keep=(), now=now)
    session.execute(delete(UserToken).where(UserToken.user_id == user.id))
    session.delete(user)
    session.flush()
    _audit(session, vault, by, "web.user_removed", target=f"user:{user_id}",
           details={"role": user.role, "keys_revoked": len(revoked)}, now=now)
    if details is not None:
        erase_platform_mail(session, vault, details[1], now=now, data_dir=data_dir)
    return revoked


def erase_platform_mail(session: Session, vault: Vault, email: str, *, now: float,
                        data_dir: Path) -> None:
    """The platform account's subject key for `email` (the mail it sent there: sign-up
    confirmations, resets, invitations) erased, unless a user still has the address."""
    platform = existing_platform_account(session)
    if platform is None or vault.find_subject(session, platform, email) is None:
        return
    if session.scalar(select(User.id).where(User.email_index == email_index(vault, email))):
        return
    erasure.erase_recipient(session, vault, platform, email, now=now, data_dir=data_dir)


def erase_account_users_mail(session: Session, vault: Vault, account_id: str, *,
                             now: float, data_dir: Path) -> None:
    """Before an account is deleted (its keys go, and with them its users' addresses): the
    platform's mail to each of its users erased. Their rows go with the account."""
    addresses = [d[1] for d in (user_details(session, vault, u)
                                for u in session.scalars(select(User).where(
                                    User.account_id == account_id))) if d is not None]
    # Their rows (and by cascade their sessions and links) go now rather than with the
    # keys, so that no user holds the addresses any more.
    session.execute(delete(User).where(User.account_id == account_id)
                    .execution_options(synchronize_session=False))
    for email in addresses:
        erase_platform_mail(session, vault, email, now=now, data_dir=data_dir)


# -- a user's own profile ------------------------------------------------------------------

def rename(session: Session, vault: Vault, user_id: str, name: str, *, now: float) -> None:
    name = clean_name(name)
    user = session.get(User, user_id)
    key = vault.keys(session, [user.key_id]).get(user.key_id) if user else None
    if user is None or key is None:
        raise NotFound(NO_SUCH_USER)
    user.name_sealed = vault.seal_text(key, name, NAME_CONTEXT)
    _audit(session, vault, user_id, "web.profile_change", target=f"user:{user_id}",
           details={"fields": ["name"]}, now=now)


def set_password(session: Session, vault: Vault, user_id: str, password_hash: str, *,
                 keep_session: str | None, now: float) -> None:
    """A new password (hashed by the caller): every other session of the user ends."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(NO_SUCH_USER)
    user.password_hash = password_hash
    end_user_sessions(session, user_id, keep=keep_session)
    _audit(session, vault, user_id, "web.password_change", target=f"user:{user_id}", now=now)


def _label(token: str) -> str:
    return f"users.email-change.{digest(token)}"


def request_email_change(session: Session, services: Services, user_id: str, new_email: str,
                         *, base_url: str) -> None:
    """Mails a one-time link to the new address; the address changes when it is followed.
    The new address travels in the link, sealed by the master key under a label bound to
    the token (so no table holds a pending address, and no other token opens it)."""
    new_email = address(new_email)
    if session.scalar(select(User.id).where(
            User.email_index == email_index(services.vault, new_email))) is not None:
        raise Conflict(ADDRESS_TAKEN)
    now = services.clock.now()
    token = issue_token(session, user_id, "email", now=now)
    sealed = base64.urlsafe_b64encode(
        services.vault.seal_secret(_label(token), new_email.encode())).decode().rstrip("=")
    send(session, services, to=new_email,
                     subject="Confirm your new address for Mailhaven", text=(
                         "Someone (we hope you) asked to log in to Mailhaven with this "
                         f"address from now on. Confirm it:\n{base_url}/email-change/{token}"
                         f"?to={sealed}\n\nThe link works once, for a day. If you did not "
                         "ask for this, ignore this mail: nothing changes."))
    _audit(session, services.vault, user_id, "web.email_change.requested",
           target=f"user:{user_id}", now=now)


def pending_address(vault: Vault, token: str, sealed: str) -> str:
    """The new address a change-of-address link carries (NotFound if it was tampered with)."""
    try:
        blob = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        return vault.open_secret(_label(token), blob).decode()
    except (ValueError, binascii.Error, InvalidTag, UnicodeDecodeError):
        raise NotFound(INVALID) from None


def confirm_email_change(session: Session, vault: Vault, token: str, sealed: str, *,
                         now: float) -> User:
    """The link was followed: the user's address is the new one, sealed under the account's
    subject key for it (the old key stays with whatever else the account holds under it)."""
    new_email = pending_address(vault, token, sealed)
    user = redeem_token(session, token, "email", now=now)
    index = email_index(vault, new_email)
    if session.scalar(select(User.id).where(User.email_index == index,
                                            User.id != user.id)) is not None:
        raise Conflict(ADDRESS_TAKEN)
    details = user_details(session, vault, user)
    if details is None:
        raise NotFound(INVALID)
    key = vault.subject(session, user.account_id, new_email)
    user.key_id, user.email_index = key.id, index
    user.name_sealed = vault.seal_text(key, details[0], NAME_CONTEXT)
    user.email_sealed = vault.seal_text(key, new_email, EMAIL_CONTEXT)
    _audit(session, vault, user.id, "web.profile_change", target=f"user:{user.id}",
           details={"fields": ["email"]}, now=now)
    return user
