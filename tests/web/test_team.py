"""`/app/team` in the browser: an Admin invites a teammate as Developer, the invitation
arrives by mail, the teammate joins and the panel limits them; the Admin changes their role
and removes them, and their session stops working. Refusals checked over HTTP."""

from __future__ import annotations

import re

from playwright.sync_api import Browser
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.users.models import User
from tests.support import Sink, deliver_due
from tests.web.helpers import add_user, csrf_of, http_log_in

NEW_PASSWORD = "a teammate's own passphrase"


def _invitation_path(sink: Sink) -> str:
    [got] = sink.received
    assert got.rcpt_tos == ["dev@acme.test"]
    assert got.message["Subject"] == "You are invited to Mailhaven"
    found = re.search(r"https?://\S+?(/invite/\S+)", got.message.get_body(("plain",)).get_content())
    assert found is not None
    return found.group(1)


def test_an_admin_invites_a_developer_whom_the_panel_then_limits(
        page, browser: Browser, live, services, account, signed_in) -> None:
    admin = signed_in(role="admin")
    page.goto(f"{live.base_url}/app/team")
    page.get_by_label("E-mail address").fill("dev@acme.test")
    page.get_by_label("Role", exact=True).select_option("developer")
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_load_state()
    assert "Invitation sent." in page.content()
    row = page.locator("tr", has_text="dev@acme.test")
    assert "invitation pending" in row.inner_text() and "Developer" in row.inner_text()

    with Sink() as sink:
        deliver_due(services, sink)
    path = _invitation_path(sink)

    teammate = browser.new_context().new_page()
    requested: list[str] = []
    teammate.on("request", lambda r: requested.append(r.url))
    teammate.goto(f"{live.base_url}{path}")
    assert "dev@acme.test" in teammate.content()
    teammate.get_by_label("Your name").fill("Dee Developer")
    teammate.get_by_label("Password").fill(NEW_PASSWORD)
    teammate.get_by_role("button", name="Join").click()
    teammate.wait_for_load_state()
    assert teammate.url == f"{live.base_url}/app"
    assert "Dee Developer · Developer" in teammate.content()
    teammate.goto(f"{live.base_url}/app/team")
    assert "Ann Admin" in teammate.content()
    assert teammate.get_by_role("button", name="Send invitation").count() == 0
    assert teammate.get_by_role("button", name="Remove").count() == 0
    # The form isn't there, and posting it anyway is refused.
    token = csrf_of(teammate.content())
    refused = teammate.request.post(f"{live.base_url}/app/team/invite", form={
        "csrf_token": token, "email": "eve@acme.test", "role": "admin"})
    assert refused.status == 403 and "does not allow" in refused.text()
    teammate.goto(f"{live.base_url}{path}")  # the link worked once
    assert "expired or was already used" in teammate.content()

    page.goto(f"{live.base_url}/app/team")
    page.get_by_label("Role of Dee Developer").select_option("analyst")
    page.locator("tr", has_text="Dee Developer").get_by_role(
        "button", name="Change role").click()
    page.wait_for_load_state()
    assert "Role changed." in page.content()
    teammate.goto(f"{live.base_url}/app")
    assert "Dee Developer · Analyst" in teammate.content()

    page.get_by_role("button", name="Remove Dee Developer").click()
    page.wait_for_load_state()
    assert "User removed." in page.content() and "dev@acme.test" not in page.content()
    teammate.goto(f"{live.base_url}/app/team")
    assert teammate.url.startswith(f"{live.base_url}/login")  # their session ended

    with services.db.sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).where(
            AuditEntry.actor == f"user:{admin}"))]
        assert {"web.invite", "web.role_change", "web.user_removed"} <= set(actions)
    for url in page.requested + requested:
        assert url.startswith(live.base_url), url
    teammate.context.close()


def _posted(client, path: str, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/app/team").text)
    return client.post(path, data={"csrf_token": token, **fields})


def test_the_last_admin_stays_and_forms_need_their_token(live, services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        demoted = _posted(client, f"/app/team/{ann}/role", role="developer")
        assert demoted.status_code == 409 and "needs an Admin" in demoted.text
        removed = _posted(client, f"/app/team/{ann}/remove")
        assert removed.status_code == 409
        forged = client.post("/app/team/invite", data={"email": "x@acme.test",
                                                       "role": "admin"})
        assert forged.status_code == 403
        taken = _posted(client, "/app/team/invite", email="ann@acme.test", role="admin")
        assert taken.status_code == 303  # answered like any invitation: no enumeration
        assert _posted(client, "/app/team/invite", email="cy@acme.test",
                       role="support").status_code == 303
        with services.db.sessions() as session:
            [cy] = [u.id for u in session.scalars(select(User)) if u.confirmed_at is None]
        assert _posted(client, f"/app/team/{cy}/resend").status_code == 303
        assert _posted(client, f"/app/team/{ann}/resend").status_code == 409  # joined
    with services.db.sessions() as session:
        assert session.get(User, ann).role == "admin"


def test_other_accounts_users_are_not_found(live, services, account, second_account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    bee = add_user(services, second_account.account_id, email="bee@bee.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        assert "bee@bee.test" not in client.get("/app/team").text
        assert _posted(client, f"/app/team/{bee}/role", role="analyst").status_code == 404
        assert _posted(client, f"/app/team/{bee}/remove").status_code == 404
    with services.db.sessions() as session:
        assert session.get(User, bee).role == "admin"


def test_an_analyst_sees_the_team_and_changes_nothing(live, services, account) -> None:
    ann = add_user(services, account[0], email="ann@acme.test")
    add_user(services, account[0], email="al@acme.test", role="analyst", name="Al")
    with live.client() as client:
        http_log_in(client, "al@acme.test")
        shown = client.get("/app/team")
        assert shown.status_code == 200 and "Send invitation" not in shown.text
        assert _posted(client, f"/app/team/{ann}/role", role="analyst").status_code == 403
        assert _posted(client, f"/app/team/{ann}/remove").status_code == 403
        assert _posted(client, "/app/team/invite", email="x@acme.test",
                       role="admin").status_code == 403
        settings = client.get("/app/settings")
        assert "Retention periods" not in settings.text and "Delete this account" not in \
            settings.text
        token = csrf_of(settings.text)
        for path in ("/app/settings/retention", "/app/settings/delete"):
            assert client.post(path, data={"csrf_token": token}).status_code == 403


def _make_key(client, role: str) -> str:  # type: ignore[no-untyped-def]
    made = client.post("/app/keys", data={"role": role, "description": role,
                                          "csrf_token": csrf_of(client.get("/app/keys").text)})
    shown = re.search(r'id="new-key-value" class="copyable">(key-[0-9a-f]+)<', made.text)
    assert shown is not None, made.text
    return shown.group(1)


def test_a_users_keys_stop_working_when_they_are_demoted_or_removed(
        live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    dev = add_user(services, account[0], email="dev@acme.test", role="developer")
    with live.client() as client:
        http_log_in(client, "dev@acme.test")
        developer_key, analyst_key = _make_key(client, "developer"), _make_key(client, "analyst")

    def works(key: str) -> bool:
        with live.client() as api:
            return api.get("/v3/domains", auth=("api", key)).status_code == 200

    assert works(developer_key) and works(analyst_key)  # now in the process's KeyCache
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        assert _posted(client, f"/app/team/{dev}/role", role="analyst").status_code == 303
        assert not works(developer_key)  # more than an Analyst may grant: revoked at once
        assert works(analyst_key)
        assert _posted(client, f"/app/team/{dev}/remove").status_code == 303
        assert not works(analyst_key)
