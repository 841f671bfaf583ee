"""Getting an account and getting back in: sign-up with a mailed confirmation link, and the
password reset by mailed link. Mail goes through the platform's own queue
(`site.mail.send_system_mail`), in the caller's transaction.

Neither answers differently for an address that has a user: a sign-up with a known address
mails its owner a notice instead, and a reset for an unknown one mails nobody."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailhaven.accounts.service import new_account
from mailhaven.audit import service as audit
from mailhaven.errors import BadRequest
from mailhaven.services import Services
from mailhaven.site.mail import send_system_mail
from mailhaven.users import sessions, throttle, tokens
from mailhaven.users.models import User
from mailhaven.users.service import create_user, find_by_email, user_details

MAX_NAME = 200
NAME_NEEDED = "Tell us your name"
ADDRESS_NEEDED = "Give an e-mail address we can write to"

CONFIRM_TEXT = """Hello {name},

Someone (we hope you) signed up for Mailhaven with this address. To confirm it, open
this link and press the button on the page:

{link}

The link works once, for 3 days. If it wasn't you, ignore this mail: nothing more happens.
"""
ALREADY_TEXT = """Hello,

Someone tried to sign up for Mailhaven with this address, which already has an account.
If it was you: log in at {login}, or reset your password at {reset}.
If it wasn't you, ignore this mail; nothing has changed.
"""
RESET_TEXT = """Hello,

Someone (we hope you) asked to reset the password of the Mailhaven user at this address.
To choose a new password, open this link within an hour:

{link}

If it wasn't you, ignore this mail: your password stays as it is.
"""


def check_signup(name: str, email: str) -> tuple[str, str]:
    """The name and address of a sign-up, trimmed (BadRequest when unusable)."""
    name, email = name.strip(), email.strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest(NAME_NEEDED)
    local, _, domain = email.rpartition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise BadRequest(ADDRESS_NEEDED)
    return name, email


def sign_up(session: Session, services: Services, *, name: str, email: str,
            password_hash: str, network: str) -> None:
    """An account with its first user (an Admin, unconfirmed) and the confirmation mail; or,
    when the address already has a user, a notice to it. The caller answers alike.
    TooManyRequests past the network's limit of mailed links."""
    now, base = services.clock.now(), services.settings.api_url
    if not throttle.admit_mail(session, throttle.who(services.vault, email, network), now=now):
        return
    existing = find_by_email(session, services.vault, email)
    details = user_details(session, services.vault, existing) if existing else None
    if existing is not None and existing.confirmed_at is None and details is not None:
        # Signing up again before confirming: a new link (the password stays the first one).
        _mail_confirmation(session, services, existing, details[0], email)
        return
    if existing is not None:
        send_system_mail(session, services, to=email, subject="Your Mailhaven sign-up",
                         text=ALREADY_TEXT.format(login=f"{base}/login", reset=f"{base}/reset"))
        audit.append(session, services.vault, actor="web", action="web.signup_existing",
                     target=f"user:{existing.id}", now=now)
        return
    account_id = new_account(session, services.vault, name=name, email=email,
                             clock=services.clock)
    user = create_user(session, services.vault, account_id=account_id, name=name, email=email,
                       password_hash=password_hash, role="admin", clock=services.clock)
    _mail_confirmation(session, services, user, name, email)
    audit.append(session, services.vault, actor="web", action="web.signup",
                 target=f"user:{user.id}", details={"account": account_id}, now=now)


def _mail_confirmation(session: Session, services: Services, user: User, name: str,
                       email: str) -> None:
    token = tokens.issue_token(session, user.id, "confirm", now=services.clock.now())
    link = f"{services.settings.api_url}/confirm/{token}"
    send_system_mail(session, services, to=email, subject="Confirm your Mailhaven address",
                     text=CONFIRM_TEXT.format(name=name, link=link))


def confirm_address(session: Session, services: Services, token: str) -> User:
    """Uses a confirmation link (NotFound / Gone otherwise): the user, now confirmed."""
    now = services.clock.now()
    user = tokens.redeem_token(session, token, "confirm", now=now)
    if user.confirmed_at is None:
        user.confirmed_at = now
        audit.append(session, services.vault, actor=f"user:{user.id}",
                     action="web.address_confirmed", target=f"account:{user.account_id}",
                     now=now)
    return user


def request_reset(session: Session, services: Services, email: str, *, network: str) -> None:
    """Mails a reset link when the address has a user; nothing otherwise (nor past the
    address's limit). TooManyRequests past the network's limit of mailed links."""
    now = services.clock.now()
    if not throttle.admit_mail(session, throttle.who(services.vault, email, network), now=now):
        return
    user = find_by_email(session, services.vault, email) if email.strip() else None
    if user is None or user_details(session, services.vault, user) is None:
        return
    token = tokens.issue_token(session, user.id, "reset", now=now)
    send_system_mail(session, services, to=email, subject="Reset your Mailhaven password",
                     text=RESET_TEXT.format(link=f"{services.settings.api_url}/reset/{token}"))


def reset_email(session: Session, services: Services, token: str) -> str:
    """The address a live reset link is for (to check the new password against); NotFound /
    Gone otherwise. Uses nothing."""
    user = tokens.peek_token(session, token, "reset", now=services.clock.now())
    details = user_details(session, services.vault, user)
    if details is None:
        raise BadRequest(tokens.INVALID)
    return details[1]


def reset_password(session: Session, services: Services, token: str,
                   password_hash: str) -> User:
    """Uses a reset link: the new password, every session ended, the address's failed
    logins forgotten (the mailbox's owner is back), the address confirmed if it wasn't."""
    now = services.clock.now()
    user = tokens.redeem_token(session, token, "reset", now=now)
    user.password_hash = password_hash
    if user.confirmed_at is None:
        user.confirmed_at = now
    sessions.end_user_sessions(session, user.id)
    throttle.clear_address(session, user.email_index)
    audit.append(session, services.vault, actor=f"user:{user.id}", action="web.password_reset",
                 target=f"account:{user.account_id}", now=now)
    return user
