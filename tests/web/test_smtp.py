"""/app/smtp: a domain's SMTP logins made (the password generated and shown once, or
given), changed and deleted through the credentials service; where to submit mail."""

from __future__ import annotations

import re

from playwright.sync_api import Page
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.credentials.service import authenticate
from tests.web.helpers import add_user, csrf_of, http_log_in


def _proves(services, login: str, password: str) -> bool:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return authenticate(session, services.vault, login, password) is not None


def test_a_login_is_made_with_a_generated_password_changed_and_deleted(
        page: Page, live, services, account, domain, signed_in) -> None:  # type: ignore[no-untyped-def]
    user_id = signed_in(role="developer")
    page.goto(f"{live.base_url}/app/smtp")
    hosts = page.locator("#submission + dl").inner_text()
    assert "mx.mailhaven.test" in hosts and "STARTTLS" in hosts
    assert str(services.settings.smtp_port) in hosts
    assert str(services.settings.smtps_port) in hosts

    page.get_by_label(f"Login at {domain}").fill("mailer")
    page.get_by_role("button", name="Create SMTP login").click()
    page.wait_for_load_state()
    password = page.locator("#new-password-value").inner_text()
    assert len(password) == 32 and password not in page.url
    assert _proves(services, f"mailer@{domain}", password)
    page.goto(f"{live.base_url}/app/smtp")
    assert password not in page.content()  # once only
    assert page.locator("td > code", has_text=f"mailer@{domain}").count() == 1

    page.get_by_label(f"New password for mailer@{domain}").fill("chosen-password-1")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == f"Password of mailer@{domain} changed."
    assert _proves(services, f"mailer@{domain}", "chosen-password-1")
    assert not _proves(services, f"mailer@{domain}", password)

    page.get_by_role("button", name=f"Delete mailer@{domain}").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == f"SMTP login mailer@{domain} deleted."
    assert not _proves(services, f"mailer@{domain}", "chosen-password-1")
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested
    with services.db.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == f"user:{user_id}").order_by(AuditEntry.id)))
    assert actions[1:] == ["credentials.created", "credentials.password_changed",
                           "credentials.deleted"]


def test_a_given_password_and_the_refusals(live, services, account, domain,
                                           second_account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/smtp").text)
        made = client.post(f"/app/smtp/{domain}/credentials",
                           data={"login": "bob", "password": "s3cret!", "csrf_token": token})
        assert made.status_code == 303  # given: nothing to show
        assert _proves(services, f"bob@{domain}", "s3cret!")
        short = client.post(f"/app/smtp/{domain}/credentials",
                            data={"login": "eve", "password": "abc", "csrf_token": token})
        assert short.status_code == 400
        assert "password should be in range 5-32 characters" in short.text
        taken = client.post(f"/app/smtp/{domain}/credentials",
                            data={"login": "bob", "csrf_token": token})
        assert taken.status_code == 400 and f"Login bob@{domain} already exists" in taken.text
        theirs = second_account.domain
        for action in ("credentials", "password", "delete"):
            answer = client.post(f"/app/smtp/{theirs}/{action}",
                                 data={"login": "bob", "csrf_token": token})
            assert answer.status_code == 404, action
        assert theirs not in client.get("/app/smtp").text
        assert client.post(f"/app/smtp/{domain}/delete",
                           data={"login": "bob"}).status_code == 403  # no CSRF token
        assert _proves(services, f"bob@{domain}", "s3cret!")


def test_an_analyst_sees_the_logins_but_changes_none(live, services, account,
                                                    domain) -> None:
    add_user(services, account[0], email="ann@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        shown = client.get("/app/smtp")
        assert shown.status_code == 200 and domain in shown.text
        assert not re.search(r'action="/app/smtp/', shown.text)
        answer = client.post(f"/app/smtp/{domain}/credentials",
                             data={"login": "x", "csrf_token": csrf_of(shown.text)})
        assert answer.status_code == 403
