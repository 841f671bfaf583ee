"""An account's team through its service functions: invitations, roles, removal, a user's
own address change; never without an Admin, never across accounts."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.errors import BadRequest, Conflict, Gone, NotFound, TooManyRequests
from mailhaven.exports import export_account
from mailhaven.users import team
from mailhaven.users.models import User
from mailhaven.users.service import find_by_email, hash_password, user_details
from mailhaven.users.sessions import find_session, start_session
from tests.exports.archive import read, validate
from tests.support import Sink, deliver_due
from tests.web.helpers import add_user

BASE = "https://panel.test"


def _invite(services, account_id: str, by: str, email: str, role: str = "developer") -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return team.invite(session, services, account_id=account_id, by=by, email=email,
                           role=role, base_url=BASE).id


def _link(sink: Sink, pattern: str) -> str:
    [got] = sink.received
    text = got.message.get_body(("plain",)).get_content()
    found = re.search(pattern, text)
    assert found is not None, text
    return found.group(1)


def test_an_invited_user_gets_a_mail_and_joins_with_a_name_and_password(services,
                                                                         account) -> None:
    admin = add_user(services, account[0], email="ann@acme.test")
    invited = _invite(services, account[0], admin, "Bob@Acme.test")
    with services.db.sessions() as session:
        [pending] = [m for m in team.members(session, services.vault, account[0]) if m.pending]
    assert (pending.id, pending.email, pending.role) == (invited, "bob@acme.test", "developer")
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received[0].rcpt_tos == ["bob@acme.test"]
    token = _link(sink, rf"{BASE}/invite/(\S+)")

    hashed = hash_password("a long enough passphrase")
    with services.db.transaction() as session:
        user = team.accept_invitation(session, services.vault, token, name="Bob Builder",
                                      password_hash=hashed, now=services.clock.now())
        assert user_details(session, services.vault, user) == ("Bob Builder", "bob@acme.test")
        assert user.confirmed_at is not None
    with pytest.raises(Gone), services.db.transaction() as session:  # a link works once
        team.accept_invitation(session, services.vault, token, name="Eve",
                               password_hash=hashed, now=services.clock.now())
    with services.db.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert {"web.invite", "web.invite.accepted"} <= set(actions)
        assert all("acme.test" not in (e.details or "") for e in session.scalars(
            select(AuditEntry)))


def test_an_address_with_a_user_anywhere_is_answered_alike_and_made_nothing(
        services, account, second_account) -> None:  # type: ignore[no-untyped-def]
    """Inviting an address tells nothing about whether it has a user (its owner gets a
    notice), and changes nothing."""
    admin = add_user(services, account[0], email="ann@acme.test")
    bee = add_user(services, second_account.account_id, email="bee@bee.test")
    for taken in ("ann@acme.test", "BEE@bee.test"):
        with services.db.transaction() as session:
            assert team.invite(session, services, account_id=account[0], by=admin,
                               email=taken, role="developer", base_url=BASE) is None
    with Sink() as sink:
        deliver_due(services, sink)
    assert sorted(r.rcpt_tos[0].lower() for r in sink.received) == [
        "ann@acme.test", "bee@bee.test"]
    assert all("/invite/" not in r.message.get_body(("plain",)).get_content()
               for r in sink.received)
    with services.db.sessions() as session:
        assert session.get(User, bee).account_id == second_account.account_id  # type: ignore[union-attr]
        assert len(list(session.scalars(select(User)))) == 2
    with pytest.raises(BadRequest):
        _invite(services, account[0], admin, "not an address")


def test_an_account_mails_at_most_twenty_invitations_an_hour(services, account) -> None:  # type: ignore[no-untyped-def]
    admin = add_user(services, account[0], email="ann@acme.test")
    for n in range(20):
        _invite(services, account[0], admin, f"dev{n}@acme.test")
    with pytest.raises(TooManyRequests, match="Too many invitations"):
        _invite(services, account[0], admin, "dev20@acme.test")
    services.clock.advance(3601)
    _invite(services, account[0], admin, "dev20@acme.test")


def test_the_last_admin_can_be_neither_demoted_nor_removed(services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    now = services.clock.now()
    with pytest.raises(Conflict, match="needs an Admin"), services.db.transaction() as s:
        team.change_role(s, services.vault, account_id=account[0], by=ann, user_id=ann,
                         role="developer", now=now)
    with pytest.raises(Conflict, match="needs an Admin"), services.db.transaction() as s:
        team.remove(s, services.vault, account_id=account[0], by=ann, user_id=ann, now=now,
                    data_dir=services.settings.data_dir)
    # A pending invitation is no Admin yet.
    _invite(services, account[0], ann, "bob@acme.test", role="admin")
    with pytest.raises(Conflict), services.db.transaction() as s:
        team.change_role(s, services.vault, account_id=account[0], by=ann, user_id=ann,
                         role="analyst", now=now)
    bob = add_user(services, account[0], email="bo@acme.test", role="admin")
    with services.db.transaction() as s:
        team.change_role(s, services.vault, account_id=account[0], by=bob, user_id=ann,
                         role="analyst", now=now)
    with services.db.sessions() as s:
        assert s.get(User, ann).role == "analyst"


def test_removal_ends_the_users_sessions_and_deletes_the_row(services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    bob = add_user(services, account[0], email="bob@acme.test", role="developer")
    now = services.clock.now()
    with services.db.transaction() as s:
        token = start_session(s, s.get(User, bob), now=now)
    with services.db.transaction() as s:
        team.remove(s, services.vault, account_id=account[0], by=ann, user_id=bob, now=now,
                    data_dir=services.settings.data_dir)
    with services.db.sessions() as s:
        assert find_session(s, token, now=now) is None
        assert s.get(User, bob) is None
        assert find_by_email(s, services.vault, "bob@acme.test") is None
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "web.user_removed"))
        assert (entry.actor, entry.target) == (f"user:{ann}", f"user:{bob}")


def test_another_accounts_users_are_not_found(services, account, second_account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    bee = add_user(services, second_account.account_id, email="bee@bee.test")
    now = services.clock.now()
    with pytest.raises(NotFound), services.db.transaction() as s:
        team.change_role(s, services.vault, account_id=account[0], by=ann, user_id=bee,
                         role="analyst", now=now)
    with pytest.raises(NotFound), services.db.transaction() as s:
        team.remove(s, services.vault, account_id=account[0], by=ann, user_id=bee, now=now,
                    data_dir=services.settings.data_dir)
    with services.db.sessions() as s:
        assert s.get(User, bee) is not None


def test_an_address_changes_only_through_the_link_mailed_to_it(services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test", name="Ann")
    with services.db.transaction() as s:
        team.request_email_change(s, services, ann, "ann@new.test", base_url=BASE)
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received[0].rcpt_tos == ["ann@new.test"]
    [got] = sink.received
    found = re.search(rf"{BASE}/email-change/([^?\s]+)\?to=(\S+)",
                      got.message.get_body(("plain",)).get_content())
    assert found is not None
    token, sealed = found.groups()
    with pytest.raises(NotFound), services.db.transaction() as s:  # tampered
        team.confirm_email_change(s, services.vault, token, sealed[:-4] + "AAAA",
                                  now=services.clock.now())
    with services.db.transaction() as s:
        team.confirm_email_change(s, services.vault, token, sealed, now=services.clock.now())
    with services.db.sessions() as s:
        assert find_by_email(s, services.vault, "ann@acme.test") is None
        user = find_by_email(s, services.vault, "ann@new.test")
        assert user is not None and user.id == ann
        assert user_details(s, services.vault, user) == ("Ann", "ann@new.test")


def test_the_holders_export_lists_the_accounts_users(services, account, tmp_path) -> None:
    ann = add_user(services, account[0], email="ann@acme.test", name="Ann Admin")
    _invite(services, account[0], ann, "bob@acme.test", role="analyst")
    with services.db.transaction() as s:
        start_session(s, s.get(User, ann), now=services.clock.now())
    done = export_account(services.db, services.vault, account[0], tmp_path / "acme.zip",
                          clock=services.clock)
    doc = read(done.path).document
    validate(doc)
    holder, *users = [(u["role"], u["name"], u["email"], u["last_login_at"] is not None)
                      for u in doc["categories"]["users"]]
    assert holder == ("account holder", "Acme", "ops@acme.test", False)
    assert sorted(users) == [("admin", "Ann Admin", "ann@acme.test", True),
                             ("analyst", "", "bob@acme.test", False)]


def test_an_invitation_sent_again_replaces_the_old_link(services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    bob = _invite(services, account[0], ann, "bob@acme.test")
    with services.db.transaction() as s:
        team.resend_invitation(s, services, account_id=account[0], by=ann, user_id=bob,
                               base_url=BASE)
    with Sink() as sink:
        deliver_due(services, sink)
    first, second = (re.search(rf"{BASE}/invite/(\S+)", got.message.get_body(
        ("plain",)).get_content()).group(1) for got in sink.received)  # type: ignore[union-attr]
    hashed = hash_password("a long enough passphrase")
    now = services.clock.now()
    with services.db.transaction() as s:  # the mail sent first no longer works
        joined = [t for t in (first, second) if _accepts(s, services, t, hashed, now)]
    assert len(joined) == 1
    with pytest.raises(Conflict), services.db.transaction() as s:
        team.resend_invitation(s, services, account_id=account[0], by=ann, user_id=bob,
                               base_url=BASE)


def _accepts(session, services, token: str, hashed: str, now: float) -> bool:  # type: ignore[no-untyped-def]
    try:
        with session.begin_nested():
            team.accept_invitation(session, services.vault, token, name="Bob",
                                   password_hash=hashed, now=now)
        return True
    except Gone:
        return False


def test_the_platforms_mail_to_a_user_is_erased_with_the_user_or_the_account(
        services, live, account, domain) -> None:  # type: ignore[no-untyped-def]
    """The platform mailed them (an invitation): that mail's subject key goes when they are
    removed, and for every user when their account is deleted."""
    from mailhaven.site.mail import existing_platform_account
    ann = add_user(services, account[0], email="ann@acme.test")
    for email in ("bob@acme.test", "cy@acme.test"):
        _invite(services, account[0], ann, email)

    def platform_keys() -> set[str]:
        with services.db.sessions() as s:
            platform = existing_platform_account(s)
            return {e for e in ("bob@acme.test", "cy@acme.test")
                    if services.vault.find_subject(s, platform, e) is not None}

    assert platform_keys() == {"bob@acme.test", "cy@acme.test"}
    with services.db.transaction() as s:
        bob = find_by_email(s, services.vault, "bob@acme.test")
        team.remove(s, services.vault, account_id=account[0], by=ann, user_id=bob.id,
                    now=services.clock.now(), data_dir=services.settings.data_dir)
    assert platform_keys() == {"cy@acme.test"}
    with live.client(account[1]) as api:
        assert api.delete("/v1/privacy/account",
                          params={"confirm": account[0]}).status_code == 200
    assert platform_keys() == set()


def test_the_holders_erasure_request_erases_the_platforms_mail_to_its_users(
        services, live, account, domain) -> None:  # type: ignore[no-untyped-def]
    """The third way an account goes: its holder's erasure request (the privacy engine's
    own path) — the platform's mail to the account's users goes with it too."""
    from mailhaven.site.mail import existing_platform_account
    ann = add_user(services, account[0], email="ann@acme.test")
    _invite(services, account[0], ann, "bob@acme.test")
    with live.client(account[1]) as api:
        assert api.post("/v1/privacy/requests", data={
            "type": "erasure", "confirm": account[0]}).status_code == 201
    with services.db.sessions() as s:
        platform = existing_platform_account(s)
        assert services.vault.find_subject(s, platform, "bob@acme.test") is None
        assert find_by_email(s, services.vault, "bob@acme.test") is None
