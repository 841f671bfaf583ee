"""Sign-up and password reset over HTTP: the same answer whether an address has a user or
not, mailed one-time links that work once and in time, and clear pages (never a 500) for
wrong, used or expired links."""

from __future__ import annotations

from sqlalchemy import func, select

from mailhaven.accounts.models import Account
from mailhaven.accounts.service import list_accounts
from mailhaven.audit.models import AuditEntry
from mailhaven.users.models import User
from tests.web.auth_mail import mailed
from tests.web.helpers import PASSWORD, add_user, csrf_of, http_log_in

NEW_PASSWORD = "violet harbour lantern"


def _post(client, path: str, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/login").text)
    return client.post(path, data={**fields, "csrf_token": token})


def test_signing_up_with_a_known_address_answers_alike_and_mails_a_notice(
        live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        known = _post(client, "/signup", name="Someone", email="ANN@acme.test",
                      password="a long enough passphrase")
        new = _post(client, "/signup", name="Bea", email="bea@other.test",
                    password="a long enough passphrase")
    assert known.status_code == new.status_code == 200
    assert "Check your mail" in known.text and "Check your mail" in new.text
    by_address = {m.to.lower(): m for m in mailed(services)}
    assert "/confirm/" not in by_address["ann@acme.test"].text  # a notice, no account
    assert "/reset" in by_address["ann@acme.test"].text
    assert "/confirm/" in by_address["bea@other.test"].text
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
        assert session.scalar(select(func.count()).select_from(Account)) == 3  # + platform


def test_weak_passwords_and_bad_fields_are_refused_with_a_reason(live, services) -> None:  # type: ignore[no-untyped-def]
    cases = [("Bea", "bea@other.test", "short", "12 to 256 characters"),
             ("Bea", "bea@other.test", "Password1234", "first an attacker tries"),
             ("Bea", "bea@other.test", "aaaaaaaaaaaaaaaa", "first an attacker tries"),
             ("Bea", "beatrice.long@other.test", "Beatrice.Long@other.test",
              "must not be your e-mail address"),
             ("", "bea@other.test", "a long enough passphrase", "Tell us your name"),
             ("Bea", "not-an-address", "a long enough passphrase", "e-mail address")]
    with live.client() as client:
        for name, email, password, reason in cases:
            answer = _post(client, "/signup", name=name, email=email, password=password)
            assert answer.status_code == 400 and reason in answer.text, (password, answer.text)
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_confirmation_links_that_are_wrong_used_or_expired(live, services) -> None:  # type: ignore[no-untyped-def]
    with live.client() as client:
        _post(client, "/signup", name="Bea", email="bea@other.test",
              password="a long enough passphrase")
        [mail] = mailed(services)
        link = mail.link(services, "confirm")
        assert client.get("/confirm/not-a-token").status_code == 404
        assert _post(client, "/confirm/not-a-token").status_code == 404
        assert client.get("/confirm/" + "x" * 500).status_code == 404
        assert client.get(link).status_code == 200
        assert client.get(link).status_code == 200  # looking uses nothing
        wrong = _post(client, link, password="not the chosen passphrase")
        assert wrong.status_code == 400 and "not the password chosen" in wrong.text
        assert _post(client, link, password="a long enough passphrase").status_code == 303
        used = _post(client, link, password="a long enough passphrase")
        assert used.status_code == 410 and "expired or was already used" in used.text
        assert client.get(link).status_code == 410

        _post(client, "/signup", name="Cy", email="cy@other.test",
              password="a long enough passphrase")
        [late] = mailed(services)
        services.clock.advance(3 * 86400 + 1)
        assert client.get(late.link(services, "confirm")).status_code == 410
        assert _post(client, late.link(services, "confirm"),
                     password="a long enough passphrase").status_code == 410
        # A reset link is not a confirmation link, nor the other way round.
        assert client.get(late.link(services, "confirm").replace("confirm", "reset")) \
            .status_code == 404


def test_a_password_reset_ends_every_session(live, services, account) -> None:  # type: ignore[no-untyped-def]
    user_id = add_user(services, account[0], email="ann@acme.test")
    with live.client() as elsewhere, live.client() as client:
        assert http_log_in(elsewhere, "ann@acme.test").status_code == 303
        assert elsewhere.get("/app").status_code == 200
        unknown = _post(client, "/reset", email="nobody@acme.test")
        known = _post(client, "/reset", email="Ann@acme.test")
        assert unknown.status_code == known.status_code == 200
        assert unknown.text.replace(csrf_of(unknown.text), "") == \
            known.text.replace(csrf_of(known.text), "")
        [mail] = mailed(services)  # only the address that has a user gets one
        assert mail.to.lower() == "ann@acme.test"
        link = mail.link(services, "reset")

        assert client.get(link).status_code == 200
        weak = _post(client, link, password="ann@acme.test")
        assert weak.status_code == 400 and "must not be your e-mail address" in weak.text
        done = _post(client, link, password=NEW_PASSWORD)
        assert done.status_code == 303 and done.headers["location"] == "/login"
        assert "Your password is changed" in client.get("/login").text

        assert elsewhere.get("/app").status_code == 303  # logged out
        assert _post(client, link, password=NEW_PASSWORD).status_code == 410
        assert http_log_in(client, "ann@acme.test", PASSWORD).status_code == 400
        assert http_log_in(client, "ann@acme.test", NEW_PASSWORD).status_code == 303

    with live.client() as client:
        _post(client, "/reset", email="ann@acme.test")
        [mail] = mailed(services)
        services.clock.advance(3601)
        assert client.get(mail.link(services, "reset")).status_code == 410
    with services.db.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == f"user:{user_id}")).all()
    assert "web.password_reset" in actions


def test_a_strangers_earlier_sign_up_is_never_confirmed_into_an_account(live, services) -> None:  # type: ignore[no-untyped-def]
    """Pre-hijacking: whoever signs up first for an address they don't own can't end up
    with the account its owner later confirms."""
    with live.client() as client:
        _post(client, "/signup", name="Mallory", email="bea@other.test",
              password="the strangers passphrase")
        _post(client, "/signup", name="Bea", email="bea@other.test",
              password="a long enough passphrase")
        both = mailed(services)  # the latest sign-up's name greets
        [strangers] = [m for m in both if "Hello Mallory," in m.text]
        [beas] = [m for m in both if "Hello Bea," in m.text]
        # The stranger's link stopped working; Bea's needs the password Bea chose.
        assert _post(client, strangers.link(services, "confirm"),
                     password="the strangers passphrase").status_code == 410
        assert _post(client, beas.link(services, "confirm"),
                     password="the strangers passphrase").status_code == 400
        # The stranger signs up again after Bea: Bea's link dies with her password.
        _post(client, "/signup", name="Mallory", email="bea@other.test",
              password="the strangers passphrase")
        [third] = mailed(services)
        assert _post(client, beas.link(services, "confirm"),
                     password="a long enough passphrase").status_code == 410
        assert _post(client, third.link(services, "confirm"),
                     password="a long enough passphrase").status_code == 400
        assert http_log_in(client, "bea@other.test", "the strangers passphrase") \
            .status_code == 400  # unconfirmed: nobody is in
        # Bea signs up once more (past the hour's 3 mails) and confirms with her own
        # password: only hers works.
        services.clock.advance(3601)
        _post(client, "/signup", name="Bea", email="bea@other.test",
              password="a long enough passphrase")
        [fourth] = mailed(services)
        assert _post(client, fourth.link(services, "confirm"),
                     password="a long enough passphrase").status_code == 303
        assert http_log_in(client, "bea@other.test", "the strangers passphrase") \
            .status_code == 400
        assert http_log_in(client, "bea@other.test", "a long enough passphrase") \
            .status_code == 303
        assert "Mallory" not in client.get("/app").text
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
        names = [a.name for a in list_accounts(session, services.vault)]
        assert "Bea" in names and "Mallory" not in names  # nothing of the stranger's stays


def test_an_invited_address_is_not_adopted_by_its_own_sign_up_or_reset(
        live, services, account) -> None:  # type: ignore[no-untyped-def]
    """Invite squatting: an account invites an address before its owner signs up; the
    owner's sign-up must not land them in that account."""
    from mailhaven.users import team
    admin = add_user(services, account[0], email="ann@acme.test")
    with services.db.transaction() as session:
        team.invite(session, services, account_id=account[0], by=admin,
                    email="bea@other.test", role="developer", base_url="http://x")
    mailed(services)  # the invitation
    with live.client() as client:
        signed = _post(client, "/signup", name="Bea", email="bea@other.test",
                       password="a long enough passphrase")
        fresh = _post(client, "/signup", name="Cy", email="cy@other.test",
                      password="a long enough passphrase")
        assert signed.status_code == fresh.status_code == 200  # answered alike
        assert "Check your mail" in signed.text
        reset = _post(client, "/reset", email="bea@other.test")
        assert reset.status_code == 200
        notices = [m for m in mailed(services) if m.to == "bea@other.test"]
        assert len(notices) == 2
        for notice in notices:
            assert "/confirm/" not in notice.text and "/reset/" not in notice.text
            assert "invited to join the team" in notice.text and account[0] in notice.text
        assert http_log_in(client, "bea@other.test", "a long enough passphrase") \
            .status_code == 400
    with services.db.sessions() as session:
        bea = session.scalar(select(User).where(User.account_id == account[0],
                                                User.role == "developer"))
        assert bea is not None and bea.password_hash is None and bea.confirmed_at is None


def test_forms_take_one_address_and_mail_it_normalised(live, services, account) -> None:  # type: ignore[no-untyped-def]
    """`ceo@corp.test,me@evil.test` is refused, never mailed to the second address."""
    admin = add_user(services, account[0], email="ann@acme.test")
    listed = "ann@acme.test,me@evil.test"
    with live.client() as client:
        signup = _post(client, "/signup", name="Me", email="ceo@corp.test,me@evil.test",
                       password="a long enough passphrase")
        assert signup.status_code == 400 and "one e-mail address" in signup.text
        reset = _post(client, "/reset", email=listed)
        assert reset.status_code == 400 and "one e-mail address" in reset.text
        assert _post(client, "/signup", name="Bea", email="Bea <BEA@Other.test>",
                     password="a long enough passphrase").status_code == 200
        assert _post(client, "/reset", email=" ANN@acme.test ").status_code == 200
        assert http_log_in(client, "ann@acme.test").status_code == 303
        settings = client.get("/app/settings").text
        change = client.post("/app/settings/email", data={
            "email": "new@acme.test,me@evil.test", "password": PASSWORD,
            "csrf_token": csrf_of(settings)})
        assert change.status_code == 400 and "one e-mail address" in change.text
        invite = client.post("/app/team/invite", data={
            "email": "dev@acme.test,me@evil.test", "role": "developer",
            "csrf_token": csrf_of(settings)})
        assert invite.status_code == 400 and "one e-mail address" in invite.text
    assert sorted(m.to for m in mailed(services)) == ["ann@acme.test", "bea@other.test"]
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
    assert admin


def test_a_sender_that_cannot_send_is_a_clear_page_never_a_500(live, services, account) -> None:  # type: ignore[no-untyped-def]
    admin = add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        assert http_log_in(client, "ann@acme.test").status_code == 303
        services.settings = services.settings.with_(system_from="not an address")
        token = csrf_of(client.get("/app/settings").text)  # the session's, on every form
        answers = [client.post(path, data={**fields, "csrf_token": token}) for path, fields in (
            ("/signup", {"name": "Bea", "email": "bea@other.test",
                         "password": "a long enough passphrase"}),
            ("/reset", {"email": "ann@acme.test"}),
            ("/app/team/invite", {"email": "dev@acme.test", "role": "developer"}),
            ("/app/settings/email", {"email": "new@acme.test", "password": PASSWORD}))]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "can&#39;t send mail right now" in answer.text
    with services.db.sessions() as session:
        assert [u.id for u in session.scalars(select(User))] == [admin]  # nothing made


def test_new_passwords_follow_sign_ups_rules_everywhere(live, services, account) -> None:  # type: ignore[no-untyped-def]
    """The settings page's change and an invitation's acceptance refuse what sign-up
    refuses: a password from the top of the breach lists, or the address itself."""
    from mailhaven.users import team
    admin = add_user(services, account[0], email="ann@acme.test")
    with services.db.transaction() as session:
        team.invite(session, services, account_id=account[0], by=admin,
                    email="dev@acme.test", role="developer", base_url=services.settings.api_url)
    [invitation] = mailed(services)
    link = invitation.link(services, "invite")
    with live.client() as client:
        for weak, reason in (("Password1234", "first an attacker tries"),
                             ("dev@acme.test", "must not be your e-mail address")):
            token = csrf_of(client.get(link).text)
            refused = client.post(link, data={"name": "Dev", "password": weak,
                                              "csrf_token": token})
            assert refused.status_code == 400 and reason in refused.text
        assert http_log_in(client, "ann@acme.test").status_code == 303
        for weak, reason in (("qwerty123456", "first an attacker tries"),
                             ("ann@acme.test", "must not be your e-mail address")):
            token = csrf_of(client.get("/app/settings").text)
            refused = client.post("/app/settings/password", data={
                "current_password": PASSWORD, "new_password": weak, "csrf_token": token})
            assert refused.status_code == 400 and reason in refused.text
    with live.client() as client:
        assert http_log_in(client, "ann@acme.test").status_code == 303  # unchanged
