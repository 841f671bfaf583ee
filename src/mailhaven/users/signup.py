"""Getting an account and getting back in: sign-up with a mailed confirmation link, and the
password reset by mailed link. Mail goes through the platform's own queue
(`site.mail.send_system_mail`), in the caller's transaction.

Neither answers differently for an address that has a user: a sign-up with a known address
mails its owner a notice instead, and a reset for an unknown one mails nobody."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.accounts.service import new_account
from mailhaven.audit import service as audit
from mailhaven.errors import BadRequest, Gone
from mailhaven.services import Services
from mailhaven.users import sessions, throttle, tokens
from mailhaven.users.login import Runner
from mailhaven.users.mail import send
from mailhaven.users.models import User, UserToken
from mailhaven.users.passwords import check_new_password
from mailhaven.users.service import (
    NAME_CONTEXT,
    check_password,
    create_user,
    find_by_email,
    hash_password,
    hashing,
    region_of_address,
    user_details,
)
from mailhaven.users.team import address

MAX_NAME = 200
NAME_NEEDED = "Tell us your name"
ADDRESS_NEEDED = "Give one e-mail address we can write to"
NOT_CHOSEN_WITH_IT = ("That is not the password chosen with this sign-up. Type the one you "
                      "chose; if you didn't sign up, or signed up again since, use the "
                      "newest link.")

CONFIRM_TEXT = """Hello {name},

Someone (we hope you) signed up for Mailhaven with this address. To confirm it, open
this link and confirm with the password you chose:

{link}

The link works once, for 3 days. If it wasn't you, ignore this mail: nothing more happens.
"""
ALREADY_TEXT = """Hello,

Someone tried to sign up for Mailhaven with this address, which already has an account.
If it was you: log in at {login}, or reset your password at {reset}.
If it wasn't you, ignore this mail; nothing has changed.
"""
INVITED_TEXT = """Hello,

Someone tried to sign up for Mailhaven with this address, or to reset its password. This
address was invited to join the team of the account "{team}" (id {account}) and has not
accepted yet, so it can't sign up or log in on its own.

If you know that team: accept with the link in the invitation mail (ask them to send it
again if it has expired). If you don't, or want your own account instead: ask them to
remove the invitation, or write to us; nothing was created or changed.
"""
RESET_TEXT = """Hello,

Someone (we hope you) asked to reset the password of the Mailhaven user at this address.
To choose a new password, open this link within an hour:

{link}

If it wasn't you, ignore this mail: your password stays as it is.
"""


def check_signup(name: str, email: str) -> tuple[str, str]:
    """The name and address of a sign-up, trimmed (BadRequest when unusable)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest(NAME_NEEDED)
    try:
        return name, address(email)
    except BadRequest:
        raise BadRequest(ADDRESS_NEEDED) from None


async def register(services: Services, *, name: str, email: str, password: str,
                   network: str, run: Runner) -> None:
    """A whole sign-up: the fields checked (BadRequest), the mail limits counted
    (TooManyRequests past the network's), and only then the password hashed, on the
    hashing threads, and `sign_up` run. `run` runs database work off the event loop."""
    name, email = check_signup(name, email)
    check_new_password(password, email)

    def admit() -> bool:
        with services.db.transaction() as session:
            return throttle.admit_mail(session, throttle.who(services.vault, email, network),
                                       now=services.clock.now())

    if not await run(admit):
        return  # past the address's limit: nothing mailed, answered alike
    hashed = await hashing(lambda: hash_password(password))

    def store() -> None:
        holder = _holding_region(services, email)
        with holder.db.transaction() as session:
            sign_up(session, holder, name=name, email=email, password_hash=hashed)

    await run(store)


def _holding_region(services: Services, email: str) -> Services:
    """The region where the sign-up is made: the one whose user has the address already,
    if any (an address is one user on the whole platform: a sign-up in another region
    would be a second user there, and could take its owner's logins), so that it is
    answered as a sign-up with a known address is; else the region asked for."""
    platform = getattr(services, "platform", None)
    if platform is None or len(platform.regions) == 1:
        return services
    return region_of_address(platform, email) or services


def sign_up(session: Session, services: Services, *, name: str, email: str,
            password_hash: str) -> None:
    """An account with its first user (an Admin, unconfirmed) and the confirmation mail; or,
    when the address already has a user, a notice to it. The caller answers alike, and
    has counted the mail (`register`)."""
    now, base = services.clock.now(), services.settings.api_url
    existing = find_by_email(session, services.vault, email)
    details = user_details(session, services.vault, existing) if existing else None
    if existing is not None and existing.password_hash is None:
        # Invited by a team and not yet joined: never adopted by a sign-up (that would put
        # the address's owner in a stranger's account); its owner is told instead.
        if details is not None:
            _mail_invited(session, services, existing, email)
        return
    if existing is not None and existing.confirmed_at is None and details is not None:
        # Signing up again before confirming: this sign-up's password replaces the earlier
        # one and the earlier links stop working, so that whoever confirms (which asks for
        # the password) proves the password is theirs; a stranger's earlier sign-up can't
        # become an account waiting for its owner to confirm it (pre-hijacking).
        _restart(session, services, existing, name, password_hash)
        _mail_confirmation(session, services, existing, name, email)
        return
    if existing is not None:
        send(session, services, to=email, subject="Your Mailhaven sign-up",
                         text=ALREADY_TEXT.format(login=f"{base}/login", reset=f"{base}/reset"))
        audit.append(session, services.vault, actor="web", action="web.signup_existing",
                     target=f"user:{existing.id}", now=now)
        return
    account_id = new_account(session, services.vault, name=name, email=email,
                             region=services.region, regions=services.settings.regions,
                             clock=services.clock)
    user = create_user(session, services.vault, account_id=account_id, name=name, email=email,
                       password_hash=password_hash, role="admin", clock=services.clock)
    _mail_confirmation(session, services, user, name, email)
    audit.append(session, services.vault, actor="web", action="web.signup",
                 target=f"user:{user.id}", details={"account": account_id}, now=now)


def _mail_invited(session: Session, services: Services, user: User, email: str) -> None:
    """The notice to an invited address that signed up or asked for a reset instead."""
    account = session.get(Account, user.account_id)
    key = services.vault.keys(session, [account.holder_key_id or ""]).get(
        account.holder_key_id or "") if account is not None else None
    team = services.vault.open_text(key, account.name_sealed, "account.name") \
        if key is not None and account is not None and account.name_sealed else "a team"
    send(session, services, to=email, subject="Your Mailhaven invitation",
                     text=INVITED_TEXT.format(team=team, account=user.account_id))
    audit.append(session, services.vault, actor="web", action="web.signup_invited",
                 target=f"user:{user.id}", now=services.clock.now())


def _restart(session: Session, services: Services, user: User, name: str,
             password_hash: str) -> None:
    key = services.vault.keys(session, [user.key_id]).get(user.key_id)
    assert key is not None  # the caller opened the user's details with it
    user.name_sealed = services.vault.seal_text(key, name, NAME_CONTEXT)
    user.password_hash = password_hash
    account = session.get(Account, user.account_id)  # made by that sign-up, named by it
    if account is not None and account.holder_key_id == key.id:
        account.name_sealed = services.vault.seal_text(key, name, "account.name")
    session.execute(update(UserToken).where(
        UserToken.user_id == user.id, UserToken.purpose == "confirm",
        UserToken.used_at.is_(None)).values(used_at=services.clock.now()))


def _mail_confirmation(session: Session, services: Services, user: User, name: str,
                       email: str) -> None:
    token = tokens.issue_token(session, user.id, "confirm", now=services.clock.now())
    link = f"{services.settings.api_url}/confirm/{token}"
    send(session, services, to=email, subject="Confirm your Mailhaven address",
                     text=CONFIRM_TEXT.format(name=name, link=link))


def confirm_address(services: Services, token: str, password: str) -> User:
    """Uses a confirmation link given the password chosen at sign-up (NotFound / Gone for
    the link, BadRequest for the password, which leaves the link usable): the user, now
    confirmed. The link proves the mailbox, the password that its owner chose it."""
    with services.db.sessions() as session:
        found = tokens.peek_token(session, token, "confirm", now=services.clock.now())
    if not check_password(found, password):  # slow: outside the write transaction
        raise BadRequest(NOT_CHOSEN_WITH_IT)
    now = services.clock.now()
    with services.db.transaction() as session:
        user = tokens.redeem_token(session, token, "confirm", now=now)
        if user.password_hash != found.password_hash:  # a later sign-up replaced it
            raise Gone(tokens.EXPIRED)
        _confirmed(session, services, user, now)
        return user


def _confirmed(session: Session, services: Services, user: User, now: float) -> None:
    if user.confirmed_at is None:
        user.confirmed_at = now
        audit.append(session, services.vault, actor=f"user:{user.id}",
                     action="web.address_confirmed", target=f"account:{user.account_id}",
                     now=now)


def request_reset(session: Session, services: Services, email: str, *, network: str) -> None:
    """Mails a reset link when the address has a user; nothing otherwise (nor past the
    address's limit). TooManyRequests past the network's limit of mailed links."""
    now, email = services.clock.now(), address(email)  # BadRequest unless one address
    if not throttle.admit_mail(session, throttle.who(services.vault, email, network), now=now):
        return
    user = find_by_email(session, services.vault, email)
    if user is None or user_details(session, services.vault, user) is None:
        return
    if user.password_hash is None:  # invited, not joined: the invitation is the way in
        _mail_invited(session, services, user, email)
        return
    token = tokens.issue_token(session, user.id, "reset", now=now)
    send(session, services, to=email, subject="Reset your Mailhaven password",
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
