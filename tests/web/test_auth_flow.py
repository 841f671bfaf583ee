"""Getting in, in a real browser: sign up, follow the mailed confirmation link, log in, turn
on the second factor, log in with a code and with a recovery code; every step in the audit
log, and nothing fetched beyond our server."""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from mailhaven.accounts.models import ApiKey
from mailhaven.audit.models import AuditEntry
from mailhaven.users.models import User
from tests.web.auth_mail import mailed

PASSWORD = "plum tulip orbit canoe"


def _log_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base_url}/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _give_code(page, code: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(code)
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()


def _log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()


def test_sign_up_confirm_log_in_and_use_a_second_factor(page, live, services) -> None:  # type: ignore[no-untyped-def]
    base = live.base_url
    page.goto(f"{base}/")
    page.goto(f"{base}/signup")
    assert page.locator("a[href='/privacy']").count() >= 1  # the consent line's notice
    page.get_by_label("Your name").fill("Zoe Founder")
    page.get_by_label("E-mail address").fill("zoe@startup.test")
    page.get_by_label("Password").fill("password1234")  # too common: refused
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state()
    assert "one of the first an attacker tries" in page.locator(".error").inner_text()
    assert page.get_by_label("Your name").input_value() == "Zoe Founder"  # kept
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state()
    assert "Check your mail" in page.content()

    _log_in(page, base, "zoe@startup.test")  # not confirmed yet
    assert "Confirm your e-mail address first" in page.content()

    [mail] = mailed(services)
    assert mail.to == "zoe@startup.test" and mail.subject == "Confirm your Mailhaven address"
    link = mail.link(services, "confirm")
    page.goto(f"{base}{link}")  # a GET confirms nothing (mail scanners follow links)
    page.get_by_label("Password").fill(PASSWORD)  # the one chosen with the sign-up
    page.get_by_role("button", name="Confirm my address").click()
    page.wait_for_load_state()
    assert page.url == f"{base}/login"
    assert "Your address is confirmed" in page.content()
    page.goto(f"{base}{link}")
    assert "This link doesn't work" in page.content()  # once only

    _log_in(page, base, "zoe@startup.test")
    assert page.url == f"{base}/app"
    assert "Zoe Founder" in page.content()
    with services.db.sessions() as session:
        user = session.scalar(select(User))
        assert user is not None and user.role == "admin" and user.confirmed_at is not None
        assert session.scalars(select(ApiKey).where(
            ApiKey.account_id == user.account_id)).all() == []  # keys are made in the panel

    # Enrolment: the key and its QR code, then a code from the app turns it on.
    page.goto(f"{base}/app/settings/2fa")
    page.get_by_label("Your current password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor authentication").click()
    page.wait_for_load_state()
    secret = page.locator("#totp-secret").inner_text()
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    totp, now = pyotp.TOTP(secret), services.clock.now()
    page.get_by_label("Code").fill("000000" if totp.at(now) != "000000" else "111111")
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_load_state()
    assert "That code is not right" in page.content()
    page.get_by_label("Code").fill(totp.at(now))
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_load_state()
    codes = page.locator("ul.recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    page.goto(f"{base}/app/settings/2fa")
    assert "10 of 10 recovery codes left" in page.content()
    assert codes[0] not in page.content()  # shown once
    _log_out(page)

    # The password alone no longer opens the panel.
    _log_in(page, base, "zoe@startup.test")
    assert "One more step" in page.content()
    page.goto(f"{base}/app")
    assert page.url.startswith(f"{base}/login")
    _give_code(page, totp.at(now))  # the code enrolment used: each works once
    assert "That code is not right" in page.content()
    _give_code(page, totp.at(now + 30))  # the next step is still accepted
    assert page.url == f"{base}/app"
    _log_out(page)

    _log_in(page, base, "zoe@startup.test")
    _give_code(page, codes[3].upper())
    assert page.url == f"{base}/app"
    _log_out(page)
    _log_in(page, base, "zoe@startup.test")
    _give_code(page, codes[3])  # used up
    assert "That code is not right" in page.content()

    with services.db.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        targets = session.scalars(select(AuditEntry.target)).all()
    for action in ("web.signup", "web.address_confirmed", "web.login", "web.2fa_enabled",
                   "web.login_failed", "web.recovery_code_used"):
        assert action in actions
    assert not any("zoe@" in (t or "") for t in targets)
    assert all(u.startswith((base, "data:")) for u in page.requested), page.requested
