"""`/app/settings`: a user corrects their profile and changes their password (other sessions
end); an Admin sets retention periods and deletes the account, which logs everyone out,
shows the completion record and leaves no user readable."""

from __future__ import annotations

import re

from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.retention import service as retention
from mailhaven.users.models import User
from mailhaven.users.service import find_by_email
from tests.support import Sink, deliver_due
from tests.web.helpers import PASSWORD, add_user, csrf_of, http_log_in, log_in

NEW_PASSWORD = "another long passphrase"


def _actions(services, user_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == f"user:{user_id}").order_by(AuditEntry.id)))


def test_a_user_corrects_their_name_changes_password_and_sets_retention(
        page, live, services, account, signed_in) -> None:
    ann = signed_in(role="admin")
    with live.client() as elsewhere:  # the same user, logged in on another device
        http_log_in(elsewhere, "ann@acme.test")
        assert elsewhere.get("/app").status_code == 200

        page.goto(f"{live.base_url}/app/settings")
        page.get_by_label("Name").fill("Ann Adams")
        page.get_by_role("button", name="Save name").click()
        page.wait_for_load_state()
        assert "Your name is saved." in page.content()
        assert "Ann Adams · Admin" in page.content()

        page.get_by_label("Current password", exact=True).last.fill("wrong password here")
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        page.wait_for_load_state()
        assert "Your current password is not right." in page.content()
        page.locator("form[action='/app/settings/password']").get_by_label(
            "Current password").fill(PASSWORD)
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        page.wait_for_load_state()
        assert "Your other sessions have ended." in page.content()
        assert elsewhere.get("/app").status_code == 303  # to the login page
    page.goto(f"{live.base_url}/app")
    assert page.url == f"{live.base_url}/app"  # this session goes on

    page.goto(f"{live.base_url}/app/settings")
    page.get_by_label("Events (days)").fill("14")
    page.get_by_label("Message bodies (days)").fill("")
    page.get_by_role("button", name="Save retention periods").click()
    page.wait_for_load_state()
    assert "Retention periods saved." in page.content()
    assert page.get_by_label("Events (days)").input_value() == "14"
    with services.db.sessions() as session:
        assert retention.days(session, account[0], "events") == 14
        assert retention.days(session, account[0], "message_bodies") == 3  # the default
    assert page.get_by_role("link", name="Manage two-factor authentication").get_attribute(
        "href") == "/app/settings/2fa"
    assert {"web.profile_change", "web.password_change", "web.retention_change"} <= set(
        _actions(services, ann))
    for url in page.requested:
        assert url.startswith(live.base_url), url


def test_an_address_changes_after_the_link_mailed_to_it_and_periods_are_checked(
        live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/settings").text)
        wrong = client.post("/app/settings/email", data={
            "csrf_token": token, "email": "ann@new.test", "password": "not my password"})
        assert wrong.status_code == 400 and "not right" in wrong.text
        too_long = client.post("/app/settings/retention", data={  # the browser checks too
            "csrf_token": token, "days_events": "99999"})
        assert too_long.status_code == 400 and "days must be between" in too_long.text
        asked = client.post("/app/settings/email", data={
            "csrf_token": token, "email": "ann@new.test", "password": PASSWORD})
        assert asked.status_code == 303
        with Sink() as sink:
            deliver_due(services, sink)
        [got] = sink.received
        assert got.rcpt_tos == ["ann@new.test"]
        found = re.search(r"https?://[^/\s]+(/email-change/\S+)",
                          got.message.get_body(("plain",)).get_content())
        assert found is not None
        shown = client.get(found.group(1))
        assert "ann@new.test" in shown.text
        sealed = re.search(r'name="to" value="([^"]+)"', shown.text)
        assert sealed is not None
        done = client.post(found.group(1).split("?")[0], data={
            "csrf_token": csrf_of(shown.text), "to": sealed.group(1)})
        assert done.status_code == 303
        assert "ann@new.test" in client.get("/app/settings").text
    with services.db.sessions() as session:
        assert find_by_email(session, services.vault, "ann@acme.test") is None
        assert find_by_email(session, services.vault, "ann@new.test") is not None


def test_an_admin_deletes_the_account_and_sees_what_was_kept(
        page, live, services, account, domain, signed_in, raw_dump) -> None:
    signed_in(role="admin")
    bob = add_user(services, account[0], email="bob@acme.test", role="developer",
                   name="Bob Bystander")
    with live.client() as bobs:
        http_log_in(bobs, "bob@acme.test")
        assert bobs.get("/app").status_code == 200

        page.goto(f"{live.base_url}/app/settings")
        assert "legal hold" in page.content()
        page.locator("form[action='/app/settings/delete']").get_by_label(
            "Your password").fill(PASSWORD)
        page.get_by_label("Type the account's id").fill("not-the-id")
        page.get_by_role("button", name="Delete the account").click()
        page.wait_for_load_state()
        assert "Type this account's id to confirm the deletion." in page.content()
        page.locator("form[action='/app/settings/delete']").get_by_label(
            "Your password").fill(PASSWORD)
        page.get_by_label("Type the account's id").fill(account[0])
        page.get_by_role("button", name="Delete the account").click()
        page.wait_for_load_state()
        record = page.locator("#completion-record").inner_text()
        assert "Your account is deleted" in page.content()
        assert account[0] in record and "1 domain(s)" in record
        assert "audit log" in record and "privacy-accountability" in record
        assert bobs.get("/app").status_code == 303  # everyone is logged out
    page.goto(f"{live.base_url}/app")
    assert page.url.startswith(f"{live.base_url}/login")
    log_in(page, live.base_url, "ann@acme.test")
    assert "is not right" in page.content()

    with services.db.sessions() as session:
        assert session.scalars(select(User).where(User.account_id == account[0])).all() == []
        assert session.get(User, bob) is None
        [deleted] = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "privacy.account.deleted"))
        assert deleted.actor.startswith("user:")
    dump = raw_dump()
    for personal in (b"Ann Admin", b"Bob Bystander", b"bob@acme.test", b"ann@acme.test"):
        assert dump.holding(personal) == [], personal
    for url in page.requested:
        assert url.startswith(live.base_url), url
